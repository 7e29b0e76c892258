package main

import (
	"io"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
	"github.com/falco-scorer/falco-scorer/sinks/stdout"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
)

// sinkKind is one destination the service can deliver to. The table of
// them is the one place that lists the sinks: which are enabled, how their
// configuration is checked, how each is built.
type sinkKind struct {
	name     string // the YAML key under sinks:, the outbox's sink name, the rules' sink name
	enabled  bool
	validate func() error        // nil: nothing to check
	secrets  func() []secret.Ref // nil: none; keys relative to the sink's section
	build    func(out io.Writer, log zerolog.Logger) (sinks.Sink, error)
}

// sinkKinds lists every sink in delivery order, each with its section of c.
func (c Config) sinkKinds() []sinkKind {
	s := c.Sinks
	return []sinkKind{{
		name:    "stdout",
		enabled: s.Stdout.Enabled,
		build:   func(out io.Writer, _ zerolog.Logger) (sinks.Sink, error) { return stdout.New(out), nil },
	}, {
		name:     "kafka",
		enabled:  s.Kafka.Enabled,
		validate: s.Kafka.Config.Validate,
		secrets:  s.Kafka.Config.Secrets,
		build: func(_ io.Writer, log zerolog.Logger) (sinks.Sink, error) {
			k, err := kafka.New(s.Kafka.Config, log)
			if err != nil {
				return nil, err
			}
			return k, nil
		},
	}, {
		name:     "slack",
		enabled:  s.Slack.Enabled,
		validate: s.Slack.Config.Validate,
		secrets:  s.Slack.Config.Secrets,
		build: func(_ io.Writer, log zerolog.Logger) (sinks.Sink, error) {
			sl, err := slack.New(s.Slack.Config, log)
			if err != nil {
				return nil, err
			}
			return sl, nil
		},
	}, {
		name:     "webhook",
		enabled:  s.Webhook.Enabled,
		validate: s.Webhook.Config.Validate,
		secrets:  s.Webhook.Config.Secrets,
		build: func(_ io.Writer, log zerolog.Logger) (sinks.Sink, error) {
			w, err := webhook.New(s.Webhook.Config, log)
			if err != nil {
				return nil, err
			}
			return w, nil
		},
	}}
}

// enabledSinks lists the sinks this configuration delivers to.
func (c Config) enabledSinks() []string {
	var out []string
	for _, k := range c.sinkKinds() {
		if k.enabled {
			out = append(out, k.name)
		}
	}
	return out
}
