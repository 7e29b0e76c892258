package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
)

// Record key choices.
const (
	KeyImage     = "image"
	KeyContainer = "container"
	KeyRule      = "rule"
	KeyNone      = "none"
)

// Config configures the Kafka sink.
type Config struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// CreateTopic creates Topic on first use when it does not exist, with
	// Partitions and ReplicationFactor (-1: the broker's default).
	CreateTopic       bool `yaml:"create_topic"`
	Partitions        int  `yaml:"partitions"`
	ReplicationFactor int  `yaml:"replication_factor"`
	// Key chooses the record key: image (default), container, rule or none.
	// A key's records go to one partition (murmur2, as Java's default
	// partitioner), so they stay ordered; with none, records have no key
	// and are spread over all partitions, with no order between them.
	Key string `yaml:"key"`
	// Compression is none, gzip, snappy (default), lz4 or zstd.
	Compression string `yaml:"compression"`
	// RequiredAcks is all (default) or one. "none" is refused: it would let
	// the outbox drop alerts the broker never stored.
	RequiredAcks string `yaml:"required_acks"`
	// BatchSize, BatchBytes and BatchTimeout tune kafka-go's per-partition
	// batching. Send writes synchronously, so BatchTimeout adds to the
	// latency of a partially filled batch: keep it short.
	BatchSize    int           `yaml:"batch_size"`
	BatchBytes   int64         `yaml:"batch_bytes"`
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// MaxAttempts is how often kafka-go tries one Send internally before the
	// error goes to the dispatcher, which retries with its own backoff.
	MaxAttempts  int           `yaml:"max_attempts"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	ClientID     string        `yaml:"client_id"`
	TLS          TLSConfig     `yaml:"tls"`
	SASL         SASLConfig    `yaml:"sasl"`
}

// TLSConfig enables TLS to the brokers. Server certificates are verified
// unless InsecureSkipVerify is set.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig enables SASL authentication. The password comes from, in
// order, the environment variable PasswordEnv, the file PasswordFile, or
// Password.
type SASLConfig struct {
	// Mechanism is "" (off), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism    string        `yaml:"mechanism"`
	Username     string        `yaml:"username"`
	Password     secret.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	PasswordEnv  string        `yaml:"password_env"`
	// AllowPlaintext accepts PLAIN without tls.enabled. PLAIN sends the
	// password itself, so without TLS anyone on the network path can read
	// it (and the alerts); SCRAM sends only a proof of the password. Set it
	// only for a broker reached over a link that is already encrypted
	// (a service mesh, a VPN) or in tests.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// PasswordRef is where the password comes from (sasl.password,
// sasl.password_file, sasl.password_env).
func (c SASLConfig) PasswordRef() secret.Ref {
	return secret.Ref{Key: "sasl.password", Inline: c.Password, File: c.PasswordFile, Env: c.PasswordEnv}
}

// Secrets lists every secret of the config.
func (c Config) Secrets() []secret.Ref { return []secret.Ref{c.SASL.PasswordRef()} }

// SASL mechanisms.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// DefaultConfig returns the defaults: topic falco-scorer.alerts, keyed by
// image, snappy, acks from all in-sync replicas.
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{"localhost:9092"},
		Topic:             "falco-scorer.alerts",
		Partitions:        6,
		ReplicationFactor: -1,
		Key:               KeyImage,
		Compression:       "snappy",
		RequiredAcks:      "all",
		BatchSize:         100,
		BatchBytes:        1 << 20,
		BatchTimeout:      time.Millisecond,
		MaxAttempts:       3,
		DialTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		ClientID:          "falco-scorer",
	}
}

// Validate reports invalid fields, named as in YAML: where and how records
// go, how they are produced, then TLS and SASL, in that order.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c.validateTopic(add)
	c.validateProducer(add)
	c.TLS.validate(add)
	c.SASL.validate(add, c.TLS.Enabled)
	return errors.Join(errs...)
}

// validateTopic checks the brokers, the topic and the record key.
func (c Config) validateTopic(add func(string, ...any)) {
	if len(c.Brokers) == 0 {
		add("brokers: empty")
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			add("brokers[%d]: %q is not host:port", i, b)
		}
	}
	if c.Topic == "" {
		add("topic: empty")
	}
	if c.CreateTopic && c.Partitions <= 0 {
		add("partitions: must be positive with create_topic, got %d", c.Partitions)
	}
	if c.CreateTopic && (c.ReplicationFactor == 0 || c.ReplicationFactor < -1) {
		add("replication_factor: must be positive or -1, got %d", c.ReplicationFactor)
	}
	if !slices.Contains([]string{KeyImage, KeyContainer, KeyRule, KeyNone}, c.Key) {
		add("key: %q, want image, container, rule or none", c.Key)
	}
}

// validateProducer checks compression, acks, batching and timeouts.
func (c Config) validateProducer(add func(string, ...any)) {
	if _, err := compression(c.Compression); err != nil {
		add("compression: %v", err)
	}
	if _, err := requiredAcks(c.RequiredAcks); err != nil {
		add("required_acks: %v", err)
	}
	for _, f := range []struct {
		key      string
		got      any
		positive bool
	}{
		{"batch_size", c.BatchSize, c.BatchSize > 0},
		{"batch_bytes", c.BatchBytes, c.BatchBytes > 0},
		{"batch_timeout", c.BatchTimeout, c.BatchTimeout > 0},
		{"max_attempts", c.MaxAttempts, c.MaxAttempts > 0},
		{"dial_timeout", c.DialTimeout, c.DialTimeout > 0},
		{"write_timeout", c.WriteTimeout, c.WriteTimeout > 0},
	} {
		if !f.positive {
			add("%s: must be positive, got %v", f.key, f.got)
		}
	}
}

func (t TLSConfig) validate(add func(string, ...any)) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("tls.cert_file: cert_file and key_file go together")
	}
	if (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) && !t.Enabled {
		add("tls.enabled: false, but tls options are set")
	}
}

func (s SASLConfig) validate(add func(string, ...any), tlsEnabled bool) {
	switch s.Mechanism {
	case "":
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if s.Username == "" {
			add("sasl.username: empty")
		}
		if err := s.PasswordRef().Required(""); err != nil {
			add("%w", err)
		}
		if s.Mechanism == MechanismPlain && !tlsEnabled && !s.AllowPlaintext {
			add("sasl.allow_plaintext: PLAIN without tls.enabled sends the password in cleartext: enable tls, use SCRAM-SHA-512, or set sasl.allow_plaintext: true if the link is encrypted otherwise")
		}
	default:
		add("sasl.mechanism: %q, want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	}
}
