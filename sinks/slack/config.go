package slack

import (
	"errors"
	"fmt"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Config configures the Slack sink. Set either a webhook URL (incoming
// webhook) or a bot token and channel (chat.postMessage, with threads).
// Each secret comes from, in order, its *_env variable, its *_file, or the
// inline value.
type Config struct {
	WebhookURL     secret.Secret `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	WebhookURLEnv  string        `yaml:"webhook_url_env"`

	BotToken     secret.Secret `yaml:"bot_token"`
	BotTokenFile string        `yaml:"bot_token_file"`
	BotTokenEnv  string        `yaml:"bot_token_env"`
	Channel      string        `yaml:"channel"`
	// APIURL is chat.postMessage's address (tests point it elsewhere).
	APIURL string `yaml:"api_url"`

	// MinPriority drops (acknowledges without sending) less severe alerts.
	MinPriority scorer.Priority `yaml:"min_priority"`
	// MinInterval is the least time between two messages: Slack accepts
	// about one message per second per webhook or channel.
	MinInterval time.Duration `yaml:"min_interval"`
	// DigestWindow groups alerts of one (image, rule) into digests for this
	// long after the incident's first message.
	DigestWindow time.Duration `yaml:"digest_window"`
	// DigestInterval is the least time between two messages of one
	// incident: its follow-ups wait (unconfirmed, in the outbox) and go out
	// as one digest. 0 posts a digest with every batch.
	DigestInterval time.Duration `yaml:"digest_interval"`
	// MaxTransitions bounds the explanation lines per message.
	MaxTransitions int           `yaml:"max_transitions"`
	Timeout        time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults: Warning and above, one message per
// second, 5 minute digest window.
func DefaultConfig() Config {
	return Config{
		APIURL:         "https://slack.com/api/chat.postMessage",
		MinPriority:    scorer.PriorityWarning,
		MinInterval:    time.Second,
		DigestWindow:   5 * time.Minute,
		DigestInterval: time.Minute,
		MaxTransitions: 5,
		Timeout:        10 * time.Second,
	}
}

// WebhookURLRef is where the webhook URL comes from (webhook_url,
// webhook_url_file, webhook_url_env).
func (c Config) WebhookURLRef() secret.Ref {
	return secret.Ref{Key: "webhook_url", Inline: c.WebhookURL, File: c.WebhookURLFile, Env: c.WebhookURLEnv}
}

// BotTokenRef is where the bot token comes from (bot_token,
// bot_token_file, bot_token_env).
func (c Config) BotTokenRef() secret.Ref {
	return secret.Ref{Key: "bot_token", Inline: c.BotToken, File: c.BotTokenFile, Env: c.BotTokenEnv}
}

// Secrets lists every secret of the config.
func (c Config) Secrets() []secret.Ref { return []secret.Ref{c.WebhookURLRef(), c.BotTokenRef()} }

func (c Config) hasWebhook() bool { return c.WebhookURLRef().IsSet() }

func (c Config) hasBot() bool { return c.BotTokenRef().IsSet() }

// Validate reports invalid fields, named as in YAML. It never prints a
// secret.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c.validateTarget(add)
	if !c.MinPriority.Valid() {
		add("min_priority: invalid")
	}
	if c.MinInterval <= 0 {
		add("min_interval: must be positive, got %s", c.MinInterval)
	}
	if c.DigestInterval < 0 {
		add("digest_interval: must not be negative, got %s", c.DigestInterval)
	}
	if c.DigestWindow < 0 {
		add("digest_window: must not be negative, got %s", c.DigestWindow)
	}
	if c.MaxTransitions < 0 || c.MaxTransitions > 20 {
		add("max_transitions: must be in [0, 20], got %d", c.MaxTransitions)
	}
	if c.Timeout <= 0 {
		add("timeout: must be positive, got %s", c.Timeout)
	}
	return errors.Join(errs...)
}

// validateTarget checks where messages go: a webhook URL, or a bot token
// with a channel and the API's address.
func (c Config) validateTarget(add func(string, ...any)) {
	switch {
	case c.hasWebhook() && c.hasBot():
		add("webhook_url: set either webhook_url or bot_token, not both")
	case !c.hasWebhook() && !c.hasBot():
		add("%w", c.WebhookURLRef().Required("bot_token and channel"))
	case c.hasBot() && c.Channel == "":
		add("channel: empty (required with bot_token)")
	}
	if !c.WebhookURL.IsZero() {
		if err := sinks.CheckHTTPURL(c.WebhookURL.Value()); err != nil {
			add("webhook_url: %v", err)
		}
	}
	if c.hasBot() {
		if err := sinks.CheckHTTPURL(c.APIURL); err != nil {
			add("api_url: %v", err)
		}
	}
}
