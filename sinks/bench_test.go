package sinks_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

type nopSink struct{ n chan int }

func (s nopSink) Name() string                { return "nop" }
func (s nopSink) Close(context.Context) error { return nil }
func (s nopSink) Send(_ context.Context, b []sinks.Item) sinks.Result {
	s.n <- len(b)
	return sinks.Delivered(len(b))
}

// headerOnlySink is a nopSink that, like Kafka and stdout, reads only the
// header and the stored payload.
type headerOnlySink struct{ nopSink }

func (headerOnlySink) HeaderOnly() bool { return true }

// BenchmarkDispatcher measures outbox read, decode, send and ack per alert,
// for a sink that needs the whole alert (webhook, Slack).
func BenchmarkDispatcher(b *testing.B) {
	benchmarkDispatcher(b, func(s nopSink) sinks.Sink { return s })
}

// BenchmarkDispatcherHeaderOnly is BenchmarkDispatcher for a sink that
// forwards the stored payload (Kafka, stdout).
func BenchmarkDispatcherHeaderOnly(b *testing.B) {
	benchmarkDispatcher(b, func(s nopSink) sinks.Sink { return headerOnlySink{s} })
}

func benchmarkDispatcher(b *testing.B, wrap func(nopSink) sinks.Sink) {
	ob := sinkstest.NewOutbox()
	payloads := make([][]byte, 100)
	for i := range payloads {
		p, err := sinkstest.FalcoAlert(i, "nginx:1.27", "r").MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		payloads[i] = p
	}
	for i := range b.N {
		ob.Put("nop", "id", payloads[i%len(payloads)])
	}
	m, _ := sinks.NewMetrics(prometheus.NewRegistry())
	s := nopSink{n: make(chan int, 1024)}
	cfg := sinks.DefaultConfig()
	cfg.PollInterval = time.Millisecond
	d, err := sinks.NewDispatcher(wrap(s), ob, cfg, zerolog.Nop(), m)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- d.Run(ctx) }()
	for got := 0; got < b.N; {
		got += <-s.n
	}
	b.StopTimer()
	cancel()
	<-done
}
