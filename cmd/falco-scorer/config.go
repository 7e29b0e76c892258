package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/scorer/source"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
	"github.com/falco-scorer/falco-scorer/store"
)

// Config is the whole service configuration: one YAML file decoded strictly
// over DefaultConfig. Each section is owned by the package that uses it;
// this file only assembles them and prefixes their field names in errors.
type Config struct {
	Log       LogConfig     `yaml:"log"`
	DataDir   string        `yaml:"data_dir"` // shorthand for store.dir
	Inputs    source.Config `yaml:"inputs"`
	Scorer    scorer.Config `yaml:"scorer"`
	RulesFile string        `yaml:"rules_file"` // priority/routing/suppression rules; built-in defaults when empty
	Store     store.Config  `yaml:"store"`
	Delivery  sinks.Config  `yaml:"delivery"` // retry, batching and dead-letter policy shared by every sink
	Sinks     SinksConfig   `yaml:"sinks"`
	Admin     AdminConfig   `yaml:"admin"`
	// ShutdownTimeout bounds the ordered shutdown after SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (the garbage
	// collector works harder near it, instead of letting the heap grow to
	// twice the live data). 0 (the default) means 80 % of the container's
	// memory limit when the process runs in a cgroup with one, and no limit
	// otherwise; GOMEMLIMIT, when set, wins over both. Under sustained
	// overload Badger's table builders and memtables are most of the live
	// heap; a limit close to that working set costs CPU (a 512 MiB limit
	// halved replay throughput in the benchmark).
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// LogConfig selects the root logger's format and level.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json or console
}

// SinksConfig enables and configures each destination.
type SinksConfig struct {
	Stdout  StdoutConfig  `yaml:"stdout"`
	Kafka   KafkaConfig   `yaml:"kafka"`
	Slack   SlackConfig   `yaml:"slack"`
	Webhook WebhookConfig `yaml:"webhook"`
}

// StdoutConfig enables the JSON-lines sink on standard output.
type StdoutConfig struct {
	Enabled bool `yaml:"enabled"`
}

// KafkaConfig enables the Kafka sink.
type KafkaConfig struct {
	Enabled      bool `yaml:"enabled"`
	kafka.Config `yaml:",inline"`
}

// SlackConfig enables the Slack sink.
type SlackConfig struct {
	Enabled      bool `yaml:"enabled"`
	slack.Config `yaml:",inline"`
}

// WebhookConfig enables the Falco-format webhook sink.
type WebhookConfig struct {
	Enabled        bool `yaml:"enabled"`
	webhook.Config `yaml:",inline"`
}

// AdminConfig places and protects the operations endpoints: /healthz,
// /readyz, /metrics and the admin API (/api/v1/...). They are served on
// Listen when it is set, else on the HTTP input's listener. The admin API
// needs Token, except on a loopback Listen; on the ingest listener it is
// not served without Token (the ingest token is Falco's, not an
// operator's). There /metrics needs a token too once either is set. See
// mountOps for the whole policy.
type AdminConfig struct {
	// Listen is a separate plain-HTTP address for the operations endpoints,
	// so that ingest can stay on loopback (Falco in the same pod) while
	// probes and Prometheus reach these from outside the pod.
	Listen    string        `yaml:"listen"`
	Token     secret.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	TokenEnv  string        `yaml:"token_env"`
	// AllowedHosts are extra host names (no port) /metrics and the admin
	// API answer to, besides IP addresses, "localhost" and the listen host:
	// a request under any other name is refused (403), since that is what
	// a DNS-rebinding web page sends. Not checked for token-protected
	// endpoints on a non-loopback listener.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// DefaultConfig is the configuration without a file: HTTP ingest on
// 127.0.0.1:2801, data in ./data, alerts on stdout.
func DefaultConfig() Config {
	c := Config{
		Log:             LogConfig{Level: "info", Format: "json"},
		DataDir:         "",
		Inputs:          source.DefaultConfig(),
		Scorer:          scorer.DefaultConfig(),
		Store:           store.DefaultConfig(),
		Delivery:        sinks.DefaultConfig(),
		ShutdownTimeout: 20 * time.Second,
		MemoryLimitMiB:  0,
	}
	c.Sinks.Stdout.Enabled = true
	c.Sinks.Kafka.Config = kafka.DefaultConfig()
	c.Sinks.Slack.Config = slack.DefaultConfig()
	c.Sinks.Webhook.Config = webhook.DefaultConfig()
	return c
}

// LoadConfig reads path (or nothing when path is empty) over the defaults
// and validates the result.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := decodeConfig(b, &cfg); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
	}
	if cfg.DataDir != "" {
		cfg.Store.Dir = cfg.DataDir
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
		return cfg, err
	}
	return cfg, nil
}

// decodeConfig decodes YAML strictly: an unknown key is an error that names
// the key and its line.
func decodeConfig(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// Validate checks every section and names failing fields by their full path.
func (c Config) Validate() error {
	var errs []error
	add := func(prefix string, err error) {
		if err == nil {
			return
		}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				errs = append(errs, fmt.Errorf("%s.%w", prefix, e))
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s.%w", prefix, err))
	}
	if _, err := newLogger(io.Discard, c.Log.Format, c.Log.Level); err != nil {
		errs = append(errs, err)
	}
	add("inputs", c.Inputs.Validate())
	add("scorer", c.Scorer.Validate())
	add("store", c.Store.Validate())
	add("delivery", c.Delivery.Validate())
	if c.Sinks.Kafka.Enabled {
		add("sinks.kafka", c.Sinks.Kafka.Config.Validate())
	}
	if c.Sinks.Slack.Enabled {
		add("sinks.slack", c.Sinks.Slack.Config.Validate())
	}
	if c.Sinks.Webhook.Enabled {
		add("sinks.webhook", c.Sinks.Webhook.Config.Validate())
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %w", err))
		}
	}
	for i, h := range c.Admin.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ \t*@") {
			errs = append(errs, fmt.Errorf("admin.allowed_hosts[%d]: %q is not a host name (no port, scheme or wildcard; IP addresses are always accepted)", i, h))
		}
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, errors.New("memory_limit_mib: negative"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be positive"))
	}
	if c.RulesFile != "" {
		if _, err := os.Stat(c.RulesFile); err != nil {
			errs = append(errs, fmt.Errorf("rules_file: %w", err))
		}
	}
	errs = append(errs, c.secretErrors()...)
	return errors.Join(errs...)
}

// secretErrors resolves every secret the service would read at start, as
// serve does (secret.Resolve: environment, then file, then inline), so that
// `config check`, which runs this same Validate, refuses a *_file that
// serve could not read. Values are read and dropped, never printed.
func (c Config) secretErrors() []error {
	type ref struct {
		path   string // YAML path of the secret's key, without _file/_env
		inline secret.Secret
		file   string
		env    string
	}
	in := c.Inputs.HTTP
	refs := []ref{
		{"inputs.http.token", in.Token, in.TokenFile, in.TokenEnv},
		{"admin.token", c.Admin.Token, c.Admin.TokenFile, c.Admin.TokenEnv},
	}
	if k := c.Sinks.Kafka; k.Enabled {
		refs = append(refs, ref{"sinks.kafka.sasl.password", k.SASL.Password, k.SASL.PasswordFile, k.SASL.PasswordEnv})
	}
	if s := c.Sinks.Slack; s.Enabled {
		refs = append(refs, ref{"sinks.slack.webhook_url", s.WebhookURL, s.WebhookURLFile, s.WebhookURLEnv},
			ref{"sinks.slack.bot_token", s.BotToken, s.BotTokenFile, s.BotTokenEnv})
	}
	if w := c.Sinks.Webhook; w.Enabled {
		refs = append(refs, ref{"sinks.webhook.url", w.URL, w.URLFile, w.URLEnv},
			ref{"sinks.webhook.bearer_token", w.BearerToken, w.BearerTokenFile, w.BearerTokenEnv})
	}
	var errs []error
	for _, r := range refs {
		field := r.path[strings.LastIndexByte(r.path, '.')+1:]
		if _, err := secret.Resolve(field, r.inline, r.file, r.env); err != nil {
			// Resolve names the key ("webhook_url_file: open …"): put the
			// section in front.
			errs = append(errs, fmt.Errorf("%s%w", r.path[:len(r.path)-len(field)], err))
		}
	}
	return errs
}

// enabledSinks lists the sinks this configuration delivers to.
func (c Config) enabledSinks() []string {
	var out []string
	if c.Sinks.Stdout.Enabled {
		out = append(out, "stdout")
	}
	if c.Sinks.Kafka.Enabled {
		out = append(out, "kafka")
	}
	if c.Sinks.Slack.Enabled {
		out = append(out, "slack")
	}
	if c.Sinks.Webhook.Enabled {
		out = append(out, "webhook")
	}
	return out
}
