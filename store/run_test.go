package store

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestRunStopsAndCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t.TempDir())
	cfg.GCInterval = time.Second
	reg := prometheus.NewRegistry()
	d, err := Open(cfg, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if _, err := d.Append(ctx, [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := counterValueOf(t, reg, "falco_scorer_store_disk_bytes"); got <= 0 {
		t.Errorf("disk_bytes gauge = %v after a maintenance pass, want > 0", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
