package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSink records what it was asked to send; send decides each outcome.
type fakeSink struct {
	headerOnly bool // its HeaderOnly result

	mu    sync.Mutex
	calls [][]string // alert ids per Send call
	items []sinks.Item
	times []time.Time
	got   []string                                        // ids of confirmed alerts, in order
	send  func(call int, batch []sinks.Item) sinks.Result // nil: all delivered
}

func (f *fakeSink) Name() string                { return "fake" }
func (f *fakeSink) Close(context.Context) error { return nil }
func (f *fakeSink) HeaderOnly() bool            { return f.headerOnly }
func (f *fakeSink) Send(ctx context.Context, batch []sinks.Item) sinks.Result {
	f.mu.Lock()
	call := len(f.calls)
	ids := make([]string, len(batch))
	for i, it := range batch {
		ids[i] = it.Header.ID
	}
	f.items = append(f.items, batch...)
	f.calls = append(f.calls, ids)
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	r := sinks.Delivered(len(batch))
	if f.send != nil {
		r = f.send(call, batch)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range r.Indexes(sinks.StatusDelivered) {
		f.got = append(f.got, ids[i])
	}
	return r
}

func (f *fakeSink) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func testConfig() sinks.Config {
	c := sinks.DefaultConfig()
	c.BatchSize = 10
	c.PollInterval = 20 * time.Millisecond
	c.InitialBackoff = 5 * time.Millisecond
	c.MaxBackoff = 20 * time.Millisecond
	c.SendTimeout = time.Second
	c.ShutdownTimeout = 100 * time.Millisecond
	return c
}

type harness struct {
	ob     *sinkstest.Outbox
	sink   *fakeSink
	d      *sinks.Dispatcher
	reg    *prometheus.Registry
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// syncBuffer captures output written concurrently.
type syncBuffer = scorertest.SyncBuffer

func newHarness(t *testing.T, cfg sinks.Config, send func(int, []sinks.Item) sinks.Result) *harness {
	t.Helper()
	return newHarnessFor(t, cfg, &fakeSink{send: send})
}

func newHarnessFor(t *testing.T, cfg sinks.Config, sink *fakeSink) *harness {
	t.Helper()
	return newHarnessForSink(t, cfg, sink, sink)
}

// newHarnessForSink dispatches to sink, which records through fake.
func newHarnessForSink(t *testing.T, cfg sinks.Config, sink sinks.Sink, fake *fakeSink) *harness {
	t.Helper()
	h := &harness{ob: sinkstest.NewOutbox(), sink: fake, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	m, err := sinks.NewMetrics(h.reg)
	if err != nil {
		t.Fatalf("NewMetrics() = %v", err)
	}
	h.d, err = sinks.NewDispatcher(sink, h.ob, cfg, zerolog.New(h.logs), m)
	if err != nil {
		t.Fatalf("NewDispatcher() = %v", err)
	}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
}

func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
}

func (h *harness) put(n int) []string {
	ids := make([]string, n)
	for i := range n {
		a := sinkstest.FalcoAlert(i, "nginx:1.27", "Terminal shell in container")
		h.ob.PutAlert("fake", a)
		ids[i] = a.ID
	}
	return ids
}

func equalIDs(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestDispatcherDelivery(t *testing.T) {
	errDown := errors.New("destination down")
	tests := []struct {
		name string
		send func(call int, batch []sinks.Item) sinks.Result
		// wantDead is the number of dead letters expected, with this reason prefix.
		wantDead   int
		deadReason string
		wantRetry  bool
	}{
		{name: "all succeed", send: nil},
		{name: "transient then ok", wantRetry: true, send: func(call int, b []sinks.Item) sinks.Result {
			if call < 3 {
				return sinks.Failed(len(b), sinks.Transient("", errDown))
			}
			return sinks.Delivered(len(b))
		}},
		{name: "partial then ok", wantRetry: true, send: func(call int, b []sinks.Item) sinks.Result {
			r := sinks.Delivered(len(b))
			if call == 0 {
				r.Fail(sinks.Transient("", errDown), 5, 6, 7, 8, 9)
			}
			return r
		}},
		{name: "one permanent item", wantDead: 1, deadReason: "permanent: ", send: func(call int, b []sinks.Item) sinks.Result {
			for _, it := range b {
				if it.Alert.Subject.PID == 4242+3 {
					return sinks.Failed(len(b), sinks.Rejected("", fmt.Errorf("rejected alert %d", it.Alert.Subject.PID)))
				}
			}
			return sinks.Delivered(len(b))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig(), tt.send)
			ids := h.put(25)
			h.start()
			scorertest.WaitFor(t, "all handled", func() bool {
				n, _ := h.ob.PendingCount("fake")
				return n == 0
			})
			h.stop(t)
			var want []string
			for i, id := range ids {
				if tt.wantDead == 1 && i == 3 {
					continue
				}
				want = append(want, id)
			}
			if got := h.sink.delivered(); !equalIDs(got, want) {
				t.Errorf("delivered = %v, want %v (in order)", got, want)
			}
			if got := h.ob.Acked("fake"); got != len(want) {
				t.Errorf("Acked = %d, want %d", got, len(want))
			}
			dead := h.ob.DeadLetters("fake")
			if len(dead) != tt.wantDead {
				t.Fatalf("dead letters = %d, want %d", len(dead), tt.wantDead)
			}
			for _, d := range dead {
				if !strings.HasPrefix(d.Reason, tt.deadReason) || d.Entry.AlertID != ids[3] {
					t.Errorf("dead letter = (%s, %q), want (%s, %q...)", d.Entry.AlertID, d.Reason, ids[3], tt.deadReason)
				}
			}
			sent := metricSum(t, h.reg, "falco_scorer_sink_sent_total")
			if int(sent) != len(want) {
				t.Errorf("sent_total = %v, want %d", sent, len(want))
			}
			if got := metricSum(t, h.reg, "falco_scorer_sink_delivery_latency_seconds"); int(got) != len(want) {
				t.Errorf("delivery_latency_seconds count = %v, want %d", got, len(want))
			}
			retried := metricSum(t, h.reg, "falco_scorer_sink_retried_total")
			if (retried > 0) != tt.wantRetry {
				t.Errorf("retried_total = %v, want >0: %v", retried, tt.wantRetry)
			}
		})
	}
}

// metricSum sums the values of every series of one metric family in reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestDispatcherExpiresToDeadLetters(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRetryTime = 50 * time.Millisecond
	h := newHarness(t, cfg, func(_ int, b []sinks.Item) sinks.Result {
		return sinks.Failed(len(b), sinks.Transient("unavailable", errors.New("broker down")))
	})
	h.put(3)
	h.start()
	scorertest.WaitFor(t, "dead letters", func() bool { return len(h.ob.DeadLetters("fake")) == 3 })
	h.stop(t)
	for _, d := range h.ob.DeadLetters("fake") {
		if !strings.HasPrefix(d.Reason, "expired: ") || !strings.Contains(d.Reason, "broker down") {
			t.Errorf("dead letter reason = %q, want expired: ... broker down", d.Reason)
		}
	}
	// Logged once despite many identical failures.
	if n := strings.Count(h.logs.String(), "delivery failing"); n != 1 {
		t.Errorf("'delivery failing' logged %d times, want 1 (log only when the error changes)\n%s", n, h.logs)
	}
}

func TestDispatcherRetryAfter(t *testing.T) {
	const pause = 300 * time.Millisecond
	h := newHarness(t, testConfig(), func(call int, b []sinks.Item) sinks.Result {
		if call == 0 {
			return sinks.Failed(len(b), sinks.Transient("", errors.New("429 slow down")).After(pause))
		}
		return sinks.Delivered(len(b))
	})
	h.put(2)
	h.start()
	scorertest.WaitFor(t, "delivery", func() bool { return h.ob.Acked("fake") == 2 })
	h.stop(t)
	h.sink.mu.Lock()
	gap := h.sink.times[1].Sub(h.sink.times[0])
	h.sink.mu.Unlock()
	if gap < pause {
		t.Errorf("second attempt after %v, want >= %v (Retry-After)", gap, pause)
	}
}

func TestDispatcherUndecodable(t *testing.T) {
	bad := []string{
		`{"not":"an alert"`, `{"not":"an alert"}`, `{"id":"x","falco":null}`, `{"id":5,"falco":{}}`,
		`[]`, ``, `{"subject":{"image":"i"},"falco":{"rule":"r"}} x`,
	}
	for _, headerOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("header only %v", headerOnly), func(t *testing.T) {
			h := newHarnessFor(t, testConfig(), &fakeSink{headerOnly: headerOnly})
			for i, p := range bad {
				h.ob.Put("fake", fmt.Sprintf("bad%d", i), []byte(p))
			}
			want := h.put(1)
			h.start()
			scorertest.WaitFor(t, "handled", func() bool { n, _ := h.ob.PendingCount("fake"); return n == 0 })
			h.stop(t)
			dead := h.ob.DeadLetters("fake")
			if len(dead) != len(bad) {
				t.Errorf("%d dead letters, want %d: %+v", len(dead), len(bad), dead)
			}
			for i, d := range dead {
				if d.Entry.AlertID != fmt.Sprintf("bad%d", i) || !strings.HasPrefix(d.Reason, "undecodable: ") {
					t.Errorf("dead letter %d = %+v, want undecodable bad%d", i, d, i)
				}
			}
			if got := h.sink.delivered(); !equalIDs(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
			if got := h.ob.Acked("fake"); got != 1 {
				t.Errorf("Acked = %d, want 1", got)
			}
		})
	}
}

// TestDispatcherHeaderOnly checks that a HeaderOnly sink gets the header
// without the decoded alert, and that other sinks get both, agreeing.
func TestDispatcherHeaderOnly(t *testing.T) {
	for _, headerOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("header only %v", headerOnly), func(t *testing.T) {
			h := newHarnessFor(t, testConfig(), &fakeSink{headerOnly: headerOnly})
			alerts := []*scorer.Alert{sinkstest.FalcoAlert(1, "nginx:1.27", "r"), sinkstest.AnomalyAlert(2, "redis:7")}
			for _, a := range alerts {
				h.ob.PutAlert("fake", a)
			}
			h.start()
			scorertest.WaitFor(t, "delivery", func() bool { return h.ob.Acked("fake") == len(alerts) })
			h.stop(t)
			h.sink.mu.Lock()
			defer h.sink.mu.Unlock()
			if len(h.sink.items) != len(alerts) {
				t.Fatalf("sink got %d items, want %d", len(h.sink.items), len(alerts))
			}
			for i, it := range h.sink.items {
				want := alerts[i].Header()
				if got := it.Header; got.ID != want.ID || got.Kind != want.Kind || !got.Time.Equal(want.Time) ||
					got.Priority != want.Priority || got.Rule != want.Rule || got.Image != want.Image ||
					got.ContainerID != want.ContainerID || got.Score != want.Score || got.Band != want.Band {
					t.Errorf("item %d Header = %+v, want %+v", i, got, want)
				}
				if (it.Alert == nil) != headerOnly {
					t.Errorf("item %d Alert = %v, want nil = %v", i, it.Alert, headerOnly)
				}
				if it.Alert != nil && it.Alert.Subject.PID != alerts[i].Subject.PID {
					t.Errorf("item %d Alert.Subject.PID = %d, want %d", i, it.Alert.Subject.PID, alerts[i].Subject.PID)
				}
			}
		})
	}
}

// TestDispatcherWake: with a poll interval of an hour, Wake alone gets a
// new alert delivered, at once. On synctest's fake clock: "at once" means
// no time passes, however busy the machine.
func TestDispatcherWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.PollInterval = time.Hour
		h := newHarness(t, cfg, nil)
		h.start()
		synctest.Wait() // Run found the outbox empty and waits
		h.put(1)
		start := time.Now()
		h.d.Wake()
		synctest.Wait()
		if got := h.ob.Acked("fake"); got != 1 {
			t.Errorf("acked %d after Wake, want 1", got)
		}
		if el := time.Since(start); el != 0 {
			t.Errorf("delivered %v after Wake, want at once", el)
		}
		h.stop(t)
	})
}

// TestDispatcherProgress: Progress signals when alerts were acknowledged
// or dead-lettered, and not before (a shutdown waits on it for the outbox
// to drain).
func TestDispatcherProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		signalled := func(h *harness) bool {
			select {
			case <-h.d.Progress():
				return true
			default:
				return false
			}
		}
		cfg := testConfig()
		cfg.PollInterval = time.Hour
		h := newHarness(t, cfg, nil)
		h.start()
		synctest.Wait()
		if signalled(h) {
			t.Error("progress signalled before any delivery")
		}
		h.put(2)
		h.d.Wake()
		synctest.Wait()
		if got, sig := h.ob.Acked("fake"), signalled(h); got != 2 || !sig {
			t.Errorf("after delivering: acked %d (want 2), progress signalled %v (want true)", got, sig)
		}
		h.stop(t)

		dead := newHarness(t, cfg, func(_ int, b []sinks.Item) sinks.Result {
			return sinks.Failed(len(b), sinks.Rejected("invalid_payload", errors.New("rejected")))
		})
		dead.start()
		synctest.Wait()
		dead.put(1)
		dead.d.Wake()
		synctest.Wait()
		if n, sig := len(dead.ob.DeadLetters("fake")), signalled(dead); n != 1 || !sig {
			t.Errorf("after a permanent failure: %d dead letters (want 1), progress signalled %v (want true)", n, sig)
		}
		dead.stop(t)
	})
}

func TestDispatcherShutdownBudget(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 150 * time.Millisecond
	ob := sinkstest.NewOutbox()
	s := &ctxSink{started: make(chan struct{}), cancelled: make(chan time.Time, 1)}
	m, err := sinks.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d, err := sinks.NewDispatcher(s, ob, cfg, zerolog.Nop(), m)
	if err != nil {
		t.Fatal(err)
	}
	ob.PutAlert("ctx", sinkstest.FalcoAlert(0, "a", "r"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-s.started
	cancelledAt := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	// The in-flight Send kept going for the shutdown budget, then was
	// cancelled; its entry stays in the outbox.
	if after := (<-s.cancelled).Sub(cancelledAt); after < 100*time.Millisecond || after > time.Second {
		t.Errorf("in-flight Send cancelled %v after Run's ctx, want about ShutdownTimeout (150ms)", after)
	}
	if n, _ := ob.PendingCount("ctx"); n != 1 {
		t.Errorf("pending after abandoned send = %d, want 1 (nothing lost)", n)
	}
}

// ctxSink blocks in Send until its context ends.
type ctxSink struct {
	started   chan struct{}
	cancelled chan time.Time
}

func (s *ctxSink) Name() string                { return "ctx" }
func (s *ctxSink) Close(context.Context) error { return nil }
func (s *ctxSink) Send(ctx context.Context, b []sinks.Item) sinks.Result {
	close(s.started)
	<-ctx.Done()
	s.cancelled <- time.Now()
	return sinks.Failed(len(b), sinks.Transient("", ctx.Err()))
}

func TestDispatcherOutboxReadError(t *testing.T) {
	h := newHarness(t, testConfig(), nil)
	h.put(2)
	h.ob.SetPendingError(errors.New("disk on fire"))
	h.start()
	time.Sleep(50 * time.Millisecond)
	h.ob.SetPendingError(nil)
	scorertest.WaitFor(t, "delivery after outbox recovers", func() bool { return h.ob.Acked("fake") == 2 })
	h.stop(t)
	if n := strings.Count(h.logs.String(), "disk on fire"); n != 1 {
		t.Errorf("outbox error logged %d times, want 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*sinks.Config)
		want   string // substring of the error; "" means valid
	}{
		{"default", func(*sinks.Config) {}, ""},
		{"zero batch", func(c *sinks.Config) { c.BatchSize = 0 }, "batch_size:"},
		{"negative poll", func(c *sinks.Config) { c.PollInterval = -1 }, "poll_interval:"},
		{"backoff order", func(c *sinks.Config) { c.InitialBackoff = time.Hour }, "initial_backoff:"},
		{"no retry time", func(c *sinks.Config) { c.MaxRetryTime = 0 }, "max_retry_time:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sinks.DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigYAMLDurations(t *testing.T) {
	c := sinks.DefaultConfig()
	if err := yaml.Unmarshal([]byte("poll_interval: 5s\nmax_retry_time: 2h30m\nbatch_size: 7\n"), &c); err != nil {
		t.Fatalf("yaml.Unmarshal() = %v", err)
	}
	if c.PollInterval != 5*time.Second || c.MaxRetryTime != 150*time.Minute || c.BatchSize != 7 {
		t.Errorf("decoded = %+v, want poll 5s, retry 2h30m, batch 7", c)
	}
}

// The dispatcher finds the optional interfaces by type assertion: the
// fakes assert theirs, so that a changed signature fails the build instead
// of quietly testing without them.
var (
	_ sinks.HeaderOnly = (*fakeSink)(nil)
	_ sinks.Keyed      = keyedSink{}
	_ sinks.HeaderOnly = headerOnlySink{}
)

// keyedSink is a fakeSink that keeps order per image (as Kafka per key).
type keyedSink struct{ *fakeSink }

func (k keyedSink) OrderKey(it sinks.Item) string { return it.Header.Image }

// TestDispatcherSetsAsideFailingItems: alerts a sink fails one by one (a
// Result.Fail) for longer than max_backoff are set aside, so the rest of
// the outbox keeps flowing; once the sink takes them they are delivered,
// nothing is dead-lettered. For a keyed sink, whose alerts of one key fail
// together, the later alerts of a key set aside are held back without being
// sent, and are delivered after it, in order.
func TestDispatcherSetsAsideFailingItems(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			var healed atomic.Bool
			var bad string // the alert that fails until healed
			fake := &fakeSink{}
			fake.send = func(_ int, b []sinks.Item) sinks.Result {
				r := sinks.Delivered(len(b))
				if healed.Load() {
					return r
				}
				// A keyed sink fails a key's alerts together (Kafka: one
				// partition); the other fails the one alert.
				var failed []int
				for i, it := range b {
					if it.Header.ID == bad || (keyed && it.Header.Image == "a:1") {
						failed = append(failed, i)
					}
				}
				if len(failed) > 0 {
					r.Fail(sinks.Transient("", errors.New("partition 3: not leader")), failed...)
				}
				return r
			}
			var sink sinks.Sink = fake
			if keyed {
				sink = keyedSink{fake}
			}
			h := newHarnessForSink(t, testConfig(), sink, fake)
			// 30 alerts, two images alternating; the first one fails.
			var ids, idsA []string
			for i := range 30 {
				img := []string{"a:1", "b:1"}[i%2]
				a := sinkstest.FalcoAlert(i, img, "rule")
				h.ob.PutAlert("fake", a)
				ids = append(ids, a.ID)
				if img == "a:1" {
					idsA = append(idsA, a.ID)
				}
			}
			bad = ids[0]
			h.start()
			wantFlow := 29 // every other alert
			if keyed {
				wantFlow = 15 // image b only: image a waits behind its first alert
			}
			scorertest.WaitFor(t, "the other alerts", func() bool { return len(fake.delivered()) >= wantFlow })
			time.Sleep(50 * time.Millisecond) // nothing else goes while the first fails
			if got := len(fake.delivered()); got != wantFlow {
				t.Errorf("delivered %d while alert 0 fails, want %d", got, wantFlow)
			}
			if keyed {
				// Image a's later alerts (other batches) were only ever sent
				// together with its first one, never past it.
				fake.mu.Lock()
				for _, call := range fake.calls {
					for _, id := range call {
						if i := slices.Index(idsA, id); i >= 5 && !slices.Contains(call, bad) {
							t.Errorf("image a alert %d was sent without the earlier one set aside: %v", 2*i, call)
						}
					}
				}
				fake.mu.Unlock()
			}
			healed.Store(true)
			scorertest.WaitFor(t, "everything", func() bool { n, _ := h.ob.PendingCount("fake"); return n == 0 })
			h.stop(t)
			if dead := h.ob.DeadLetters("fake"); len(dead) != 0 {
				t.Errorf("%d dead letters, want 0", len(dead))
			}
			got := fake.delivered()
			if len(got) != 30 {
				t.Fatalf("delivered %d alerts, want 30", len(got))
			}
			if keyed {
				var gotA []string
				for _, id := range got {
					if slices.Contains(idsA, id) {
						gotA = append(gotA, id)
					}
				}
				if !equalIDs(gotA, idsA) {
					t.Errorf("image a delivered in order %v, want %v", gotA, idsA)
				}
			}
			if !strings.Contains(h.logs.String(), "set aside") {
				t.Errorf("setting alerts aside was not logged:\n%s", h.logs)
			}
		})
	}
}

// TestDispatcherSetAsideDoesNotStallSink: one alert a sink fails one by one
// forever, steady traffic behind it. Once set aside, a rewind that finds
// it failing again sets it aside at once (no max_backoff of retries in
// place), and rewinds back off until it goes through, so the rest of the
// sink keeps flowing.
func TestDispatcherSetAsideDoesNotStallSink(t *testing.T) {
	cfg := testConfig()
	cfg.InitialBackoff = 10 * time.Millisecond
	cfg.MaxBackoff = 300 * time.Millisecond
	cfg.PollInterval = 5 * time.Millisecond
	var bad string
	var mu sync.Mutex
	deliveredAt := map[string]time.Time{}
	fake := &fakeSink{}
	fake.send = func(_ int, b []sinks.Item) sinks.Result {
		var failed []int
		for i, it := range b {
			if it.Header.ID == bad {
				failed = append(failed, i)
			}
		}
		mu.Lock()
		for i, it := range b {
			if len(failed) == 0 || failed[0] != i {
				deliveredAt[it.Header.ID] = time.Now()
			}
		}
		mu.Unlock()
		r := sinks.Delivered(len(b))
		if len(failed) > 0 {
			r.Fail(sinks.Transient("", errors.New("partition 3: not leader")), failed...)
		}
		return r
	}
	h := newHarnessFor(t, cfg, fake)
	a := sinkstest.FalcoAlert(0, "a:1", "rule")
	bad = a.ID
	h.ob.PutAlert("fake", a)
	h.start()
	scorertest.WaitFor(t, "set aside", func() bool { return len(h.logs.String()) > 0 && strings.Contains(h.logs.String(), "set aside") })
	// Steady traffic: one alert every 10 ms for 3 s.
	putAt := map[string]time.Time{}
	for i := 1; i <= 300; i++ {
		al := sinkstest.FalcoAlert(i, fmt.Sprintf("b%d:1", i), "rule")
		putAt[al.ID] = time.Now()
		h.ob.PutAlert("fake", al)
		h.d.Wake()
		time.Sleep(10 * time.Millisecond)
	}
	scorertest.WaitFor(t, "all good alerts", func() bool { mu.Lock(); defer mu.Unlock(); return len(deliveredAt) >= 300 })
	h.stop(t)
	slow := 0
	var worst time.Duration
	mu.Lock()
	for id, p := range putAt {
		l := deliveredAt[id].Sub(p)
		worst = max(worst, l)
		if l > 100*time.Millisecond {
			slow++
		}
	}
	mu.Unlock()
	t.Logf("%d of 300 healthy alerts waited > 100ms behind the set-aside one; worst %s; sets aside logged %d times", slow, worst, strings.Count(h.logs.String(), "set aside"))
	if slow > 30 {
		t.Errorf("the set-aside alert still holds up the sink: %d of 300 healthy alerts waited > 100ms (worst %s)", slow, worst)
	}
	warned := 0
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "set aside") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("setting the same alert aside warned %d times, want once an episode:\n%s", warned, h.logs)
	}
}
