package sinks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

// TestQueueDepthTracksOutboxDuringOutage: while the sink is down the
// dispatcher retries its first batch and reads nothing more from the
// outbox, yet queue_depth counts every alert waiting there, far more than
// one batch; after recovery it drains to 0. Fake time (synctest): the
// backoffs pass without waiting.
func TestQueueDepthTracksOutboxDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var down atomic.Bool
		down.Store(true)
		cfg := testConfig() // batches of 10
		cfg.MaxRetryTime = 24 * time.Hour
		h := newHarness(t, cfg, func(_ int, b []sinks.Item) sinks.Result {
			if down.Load() {
				return sinks.Failed(len(b), sinks.Transient("", errors.New("destination down")))
			}
			return sinks.Delivered(len(b))
		})
		depth := func() int { return int(metricSum(t, h.reg, "falco_scorer_sink_queue_depth")) }
		put := func(from, n int) {
			for i := from; i < from+n; i++ {
				h.ob.PutAlert("fake", sinkstest.FalcoAlert(i, "nginx:1.27", "r"))
			}
		}
		put(0, 5)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.d.Run(ctx) }()
		synctest.Wait() // the first batch failed; the dispatcher backs off

		put(5, 1000) // the outage goes on, alerts keep coming
		time.Sleep(time.Minute)
		synctest.Wait()
		h.sink.mu.Lock()
		calls := len(h.sink.calls)
		h.sink.mu.Unlock()
		if n := calls; n < 3 {
			t.Fatalf("Send called %d times in a minute of outage, want retries", n)
		}
		if got := depth(); got != 1005 {
			t.Errorf("queue_depth during the outage = %d, want 1005 (every alert waiting in the outbox)", got)
		}

		down.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if n, _ := h.ob.PendingCount("fake"); n != 0 {
			t.Fatalf("outbox holds %d alerts a minute after recovery, want 0", n)
		}
		if got := depth(); got != 0 {
			t.Errorf("queue_depth after recovery = %d, want 0", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
}
