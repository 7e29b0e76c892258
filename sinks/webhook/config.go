package webhook

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Config configures the webhook sink. The URL and the bearer token are
// secrets: each comes from its *_env variable, its *_file, or the inline
// value, in that order.
type Config struct {
	URL     secret.Secret `yaml:"url"`
	URLFile string        `yaml:"url_file"`
	URLEnv  string        `yaml:"url_env"`

	BearerToken     secret.Secret `yaml:"bearer_token"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	BearerTokenEnv  string        `yaml:"bearer_token_env"`

	// Headers are added to every request (not for credentials: they are
	// not redacted; use bearer_token).
	Headers map[string]string `yaml:"headers"`
	Timeout time.Duration     `yaml:"timeout"`
}

// URLRef is where the URL comes from (url, url_file, url_env).
func (c Config) URLRef() secret.Ref {
	return secret.Ref{Key: "url", Inline: c.URL, File: c.URLFile, Env: c.URLEnv}
}

// BearerTokenRef is where the bearer token comes from (bearer_token,
// bearer_token_file, bearer_token_env).
func (c Config) BearerTokenRef() secret.Ref {
	return secret.Ref{Key: "bearer_token", Inline: c.BearerToken, File: c.BearerTokenFile, Env: c.BearerTokenEnv}
}

// Secrets lists every secret of the config.
func (c Config) Secrets() []secret.Ref { return []secret.Ref{c.URLRef(), c.BearerTokenRef()} }

// DefaultConfig returns the defaults (a 10 s timeout; no URL).
func DefaultConfig() Config { return Config{Timeout: 10 * time.Second} }

// Validate reports invalid fields, named as in YAML, without printing
// secrets.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := c.URLRef().Required(""); err != nil {
		errs = append(errs, err)
	}
	if !c.URL.IsZero() {
		if err := sinks.CheckHTTPURL(c.URL.Value()); err != nil {
			add("url: %v", err)
		}
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			add("headers: invalid header name %q", k)
		}
		if strings.EqualFold(k, "Authorization") {
			add("headers: Authorization is set from bearer_token")
		}
	}
	if c.Timeout <= 0 {
		add("timeout: must be positive, got %s", c.Timeout)
	}
	return errors.Join(errs...)
}
