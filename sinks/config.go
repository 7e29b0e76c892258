package sinks

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes a Dispatcher. The same values usually serve every sink.
type Config struct {
	// BatchSize is the most entries read from the outbox and sent at once;
	// it bounds the dispatcher's memory.
	BatchSize int `yaml:"batch_size"`
	// PollInterval is how often the outbox is read when nobody calls Wake.
	PollInterval time.Duration `yaml:"poll_interval"`
	// InitialBackoff is the first pause after a failed send; it doubles (with
	// jitter) up to MaxBackoff.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// MaxRetryTime bounds how long after it was enqueued an entry is retried
	// before it moves to the dead-letter set.
	MaxRetryTime time.Duration `yaml:"max_retry_time"`
	// SendTimeout bounds one Send call.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// ShutdownTimeout is how long an in-flight Send may go on after Run's
	// context is cancelled before it is abandoned (its entries stay in the
	// outbox and are sent again after a restart).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		BatchSize:       100,
		PollInterval:    time.Second,
		InitialBackoff:  500 * time.Millisecond,
		MaxBackoff:      30 * time.Second,
		MaxRetryTime:    24 * time.Hour,
		SendTimeout:     30 * time.Second,
		ShutdownTimeout: 5 * time.Second,
	}
}

// Validate reports the first invalid fields, named as in YAML.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, d))
		}
	}
	if c.BatchSize <= 0 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch_size: must be in [1, 10000], got %d", c.BatchSize))
	}
	pos("poll_interval", c.PollInterval)
	pos("initial_backoff", c.InitialBackoff)
	pos("max_backoff", c.MaxBackoff)
	pos("max_retry_time", c.MaxRetryTime)
	pos("send_timeout", c.SendTimeout)
	pos("shutdown_timeout", c.ShutdownTimeout)
	if c.MaxBackoff > 0 && c.InitialBackoff > c.MaxBackoff {
		errs = append(errs, fmt.Errorf("initial_backoff: %s is more than max_backoff %s", c.InitialBackoff, c.MaxBackoff))
	}
	return errors.Join(errs...)
}
