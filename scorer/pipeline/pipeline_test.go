package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// memStore is an in-memory Journal and Baselines for pipeline tests.
type memStore struct {
	mu        sync.Mutex
	next      uint64
	journal   map[uint64][]byte
	outbox    []scorer.OutboxPut
	buckets   map[string][]scorer.BaselineBucket
	meta      map[string][]byte
	failNext  int // Complete fails this many times
	failLoads int // LoadImage fails this many times
}

func newMemStore() *memStore {
	return &memStore{journal: map[uint64][]byte{}, buckets: map[string][]scorer.BaselineBucket{}, meta: map[string][]byte{}}
}

func (m *memStore) Append(_ context.Context, raws [][]byte) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seqs := make([]uint64, len(raws))
	for i, r := range raws {
		m.next++
		m.journal[m.next] = r
		seqs[i] = m.next
	}
	return seqs, nil
}

func (m *memStore) Complete(done []uint64, alerts []scorer.OutboxPut) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return fmt.Errorf("disk on fire")
	}
	for _, s := range done {
		delete(m.journal, s)
	}
	m.outbox = append(m.outbox, alerts...)
	return nil
}

func (m *memStore) Replay(fn func(uint64, []byte) error) error {
	m.mu.Lock()
	keys := make([]uint64, 0, len(m.journal))
	for k := range m.journal {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		m.mu.Lock()
		raw := m.journal[k]
		m.mu.Unlock()
		if err := fn(k, raw); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) PutDeltas(ds []scorer.BaselineDelta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range ds {
		m.buckets[d.Image] = append(m.buckets[d.Image], scorer.BaselineBucket{Bucket: d.Bucket, Counts: d.Counts})
		if d.Meta != nil {
			m.meta[d.Image] = d.Meta
		}
	}
	return nil
}

func (m *memStore) LoadBaselines(since time.Time, fn func(string, []byte, []scorer.BaselineBucket) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for img, bs := range m.buckets {
		var keep []scorer.BaselineBucket
		for _, b := range bs {
			if !b.Bucket.Before(since) {
				keep = append(keep, b)
			}
		}
		if err := fn(img, m.meta[img], keep); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) ImageBuckets(image string, from, to time.Time) ([]scorer.BaselineBucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []scorer.BaselineBucket
	for _, b := range m.buckets[image] {
		if !b.Bucket.Before(from) && b.Bucket.Before(to) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memStore) DropBucketsBefore(time.Time) error { return nil }

func (m *memStore) alerts(t *testing.T) []map[string]any {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]any
	for _, p := range m.outbox {
		var v map[string]any
		if err := json.Unmarshal(p.Payload, &v); err != nil {
			t.Fatalf("outbox payload is not JSON: %v", err)
		}
		out = append(out, v)
	}
	return out
}

func (m *memStore) journalLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.journal)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// normalTrace is a process of a web server: the same few loops with
// variations, like ADFA-LD's normal traces.
func normalTrace(rng *rand.Rand, n int) []string {
	loops := [][]string{
		{"accept", "read", "openat", "fstat", "read", "close", "write", "close"},
		{"epoll_wait", "read", "write"},
		{"openat", "mmap", "read", "munmap", "close"},
	}
	var out []string
	for len(out) < n {
		out = append(out, loops[rng.IntN(len(loops))]...)
	}
	return out[:n]
}

// attackTrace is what the web server's process does once taken over.
func attackTrace(n int) []string {
	pat := []string{"execve", "setuid", "socket", "connect", "dup2", "dup2", "execve", "ptrace", "openat", "chmod"}
	var out []string
	for len(out) < n {
		out = append(out, pat...)
	}
	return out[:n]
}

type harness struct {
	t    *testing.T
	p    *Pipeline
	st   *memStore
	clk  *clock
	seq  int
	ctx  context.Context
	stop context.CancelFunc
	done chan error
	tim  time.Time
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Workers = 2
	cfg.LearningBlockEvents = 500
	cfg.LearningBlocks = 3
	cfg.NewTransitionRate = 0.01
	cfg.AlertBudget = 1000
	cfg.FlushInterval = time.Hour // flushes are driven by the tests
	return cfg
}

func newHarness(t *testing.T, cfg Config, st *memStore) *harness {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	p, err := New(cfg, Deps{Journal: st, Baselines: st, Sinks: []string{"stdout"}, Now: clk.Now},
		zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &harness{t: t, p: p, st: st, clk: clk, ctx: ctx, stop: stop, done: make(chan error, 1), tim: clk.Now()}
	go func() { h.done <- p.Run(ctx) }()
	<-p.Ready()
	t.Cleanup(func() { h.shutdown() })
	return h
}

func (h *harness) shutdown() {
	if h.stop == nil {
		return
	}
	h.stop()
	h.stop = nil
	if err := <-h.done; err != nil {
		h.t.Errorf("Run() error = %v", err)
	}
}

func (h *harness) event(rule, prio, container, image string, pid int, evtType string, tags ...string) scorer.Event {
	h.seq++
	h.tim = h.tim.Add(time.Microsecond)
	f := map[string]any{"container.id": container, "container.image.repository": image, "container.image.tag": "1",
		"proc.pid": pid, "proc.name": "web", "evt.type": evtType, "k8s.ns.name": "shop", "k8s.pod.name": "web-1"}
	raw, _ := json.Marshal(map[string]any{"rule": rule, "priority": prio, "time": h.tim.Format(time.RFC3339Nano),
		"tags": tags, "output_fields": f, "output": fmt.Sprintf("event %d", h.seq), "source": "syscall"})
	ev, err := scorer.DecodeJSON(raw)
	if err != nil {
		h.t.Fatalf("DecodeJSON: %v", err)
	}
	return ev
}

func (h *harness) observations(container, image string, pid int, calls []string) []scorer.Event {
	var evs []scorer.Event
	for _, c := range calls {
		evs = append(evs, h.event("falco-scorer process observation", "Debug", container, image, pid, c, "falco_scorer"))
	}
	return evs
}

func (h *harness) accept(evs []scorer.Event) {
	h.t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 256)
		if err := h.p.Accept(context.Background(), "test", evs[:n]); err != nil {
			h.t.Fatalf("Accept() error = %v", err)
		}
		evs = evs[n:]
	}
}

// settle waits until every accepted event is committed.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a busy machine
	for h.p.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("pipeline did not settle: %d in flight", h.p.inflight.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) train(image string, processes, length int, rng *rand.Rand) {
	for i := 0; i < processes; i++ {
		pid := 1000 + h.seq
		evs := h.observations("c-"+image, image, pid, normalTrace(rng, length))
		evs = append(evs, h.event("falco-scorer process observation", "Debug", "c-"+image, image, pid, "procexit", "falco_scorer"))
		h.accept(evs)
	}
	h.settle()
}

// trainMonitoring trains nginx:1 on normal processes until it monitors.
func (h *harness) trainMonitoring(rng *rand.Rand) {
	h.t.Helper()
	h.train("nginx", 12, 400, rng)
	if s, _ := h.state("nginx:1"); s != scorer.StateMonitoring {
		h.t.Fatalf("after training state = %q, want monitoring", s)
	}
}

func (h *harness) state(image string) (string, float64) {
	for _, w := range h.p.workers {
		if img, ok := w.images[image]; ok {
			return img.state, img.threshold
		}
	}
	return "", 0
}

func kinds(alerts []map[string]any) map[string]int {
	m := map[string]int{}
	for _, a := range alerts {
		m[a["kind"].(string)]++
	}
	return m
}

func TestPipelineLearnsGraduatesAndFlagsAttack(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(1, 2))
	h.trainMonitoring(rng)
	// More normal traffic. The budget (1000 per million events) allows a
	// few exceedances over these ~7000 events; hysteresis makes them fewer
	// alerts still.
	h.train("nginx", 5, 400, rng)
	normalAlerts := len(st.alerts(t))
	if normalAlerts > 3 {
		t.Errorf("alerts on normal traffic = %d (%v), want at most 3", normalAlerts, kinds(st.alerts(t)))
	}
	// The attack: a process of the same image doing something else.
	h.accept(h.observations("c-nginx", "nginx", 66666, attackTrace(60)))
	h.accept([]scorer.Event{h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66667, "execve", "shell")})
	h.settle()
	alerts := st.alerts(t)[normalAlerts:]
	k := kinds(alerts)
	if k[scorer.KindAnomaly] != 1 {
		t.Fatalf("anomaly alerts for the attack = %d, want exactly 1 (one episode, one alert); got %v", k[scorer.KindAnomaly], k)
	}
	if k[scorer.KindFalco] != 1 {
		t.Fatalf("falco alerts = %d, want 1", k[scorer.KindFalco])
	}
	for _, a := range alerts {
		switch a["kind"] {
		case scorer.KindAnomaly:
			ex, ok := a["explanation"].(map[string]any)
			if !ok || len(ex["transitions"].([]any)) == 0 {
				t.Errorf("anomaly alert without explanation: %v", a)
			}
			sc := a["score"].(map[string]any)
			if sc["value"].(float64) <= sc["threshold"].(float64) {
				t.Errorf("anomaly score %v not above threshold %v", sc["value"], sc["threshold"])
			}
			if a["falco"].(map[string]any)["rule"] != "falco-scorer process observation" {
				t.Errorf("original event not kept under falco: %v", a["falco"])
			}
		case scorer.KindFalco:
			sc := a["score"].(map[string]any)
			if sc["verdict"] != scorer.VerdictAnomalous {
				t.Errorf("falco alert from the attacked container has verdict %v, want anomalous", sc["verdict"])
			}
		}
	}
	if st.journalLen() != 0 {
		t.Errorf("journal holds %d entries after settling, want 0", st.journalLen())
	}
}

func TestPipelinePoisoningGuard(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(3, 4))
	h.train("nginx", 12, 400, rng)
	var before uint64
	for _, w := range h.p.workers {
		if img, ok := w.images["nginx:1"]; ok {
			before = img.model.Stats().Events
		}
	}
	attack := h.observations("c-nginx", "nginx", 7777, attackTrace(300))
	h.accept(attack)
	h.settle()
	var after uint64
	for _, w := range h.p.workers {
		if img, ok := w.images["nginx:1"]; ok {
			after = img.model.Stats().Events
		}
	}
	// Only the events before the alarm rose may be learned.
	if learned := after - before; learned > 60 {
		t.Errorf("events of an anomalous sequence learned = %d of %d, want at most the window before the alarm", learned, len(attack))
	}
}

func TestPipelineOverloadAndReplay(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.QueueSize = 10
	clk := &clock{t: time.Now()}
	p, err := New(cfg, Deps{Journal: st, Sinks: []string{"stdout"}, Now: clk.Now}, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: clk, tim: clk.Now()}
	// Not running: events journal, then the queue fills.
	var evs []scorer.Event
	for i := 0; i < 11; i++ {
		evs = append(evs, h.event("Some rule", "Warning", "c1", "nginx", 1, "execve"))
	}
	if err := p.Accept(context.Background(), "test", evs[:10]); err != nil {
		t.Fatalf("Accept(10) error = %v", err)
	}
	if err := p.Accept(context.Background(), "test", evs[10:]); err != scorer.ErrOverloaded {
		t.Fatalf("Accept(11th) error = %v, want ErrOverloaded", err)
	}
	if st.journalLen() != 10 {
		t.Fatalf("journal = %d, want 10 (the refused event must not be journaled)", st.journalLen())
	}
	// A new pipeline over the same store replays the journal.
	p2, err := New(cfg, Deps{Journal: st, Sinks: []string{"stdout"}, Now: clk.Now}, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p2.Run(ctx) }()
	<-p2.Ready()
	deadline := time.Now().Add(30 * time.Second) // a hang, not a busy machine
	for st.journalLen() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if st.journalLen() != 0 || len(st.alerts(t)) < 10 {
		t.Errorf("after replay journal = %d alerts = %d, want 0 and ≥ 10", st.journalLen(), len(st.alerts(t)))
	}
}

func TestPipelineShutdownDrainsAndRetriesCommit(t *testing.T) {
	st := newMemStore()
	st.failNext = 3
	h := newHarness(t, testConfig(), st)
	var evs []scorer.Event
	for i := 0; i < 2000; i++ {
		evs = append(evs, h.event("Some rule", "Warning", fmt.Sprintf("c%d", i%7), "nginx", i, "execve"))
	}
	h.accept(evs)
	h.shutdown() // cancel right away: everything accepted must still be committed
	if n := st.journalLen(); n != 0 {
		t.Errorf("journal after shutdown = %d, want 0", n)
	}
	if n := len(st.alerts(t)); n != 2000 {
		t.Errorf("alerts after shutdown = %d, want 2000", n)
	}
}

func TestPipelineBaselinesSurviveRestartAndRoll(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Horizon = 2 * time.Hour
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(5, 6))
	h.train("nginx", 12, 400, rng)
	for _, w := range h.p.workers {
		w.flushBaselines(h.clk.Now())
	}
	h.shutdown()

	// Restart: the baseline comes back, still graduated, same threshold.
	h2 := newHarness(t, cfg, st)
	h2.clk = h.clk
	state, thr := h2.state("nginx:1")
	_, thr1 := h.state("nginx:1")
	if state != scorer.StateMonitoring || thr != thr1 {
		t.Fatalf("after restart state = %q threshold %v, want monitoring %v", state, thr, thr1)
	}
	var img *image
	for _, w := range h2.p.workers {
		if i, ok := w.images["nginx:1"]; ok {
			img = i
		}
	}
	if img.model.Stats().Events == 0 {
		t.Fatal("restored model is empty")
	}
	// Three hours later the bucket has left the 2 h horizon: its counts go.
	later := h.clk.Now().Add(3 * time.Hour)
	for _, w := range h2.p.workers {
		w.rollHorizon(later)
	}
	if ev := img.model.Stats().Events; ev != 0 {
		t.Errorf("events after the horizon passed = %d, want 0", ev)
	}
}

func (m *memStore) CompactBucket(image string, bucket time.Time, expect int, merged []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var kept []scorer.BaselineBucket
	n := 0
	for _, b := range m.buckets[image] {
		if b.Bucket.Equal(bucket) {
			n++
			continue
		}
		kept = append(kept, b)
	}
	if n != expect {
		return fmt.Errorf("conflict: %d blobs, expected %d", n, expect)
	}
	m.buckets[image] = append(kept, scorer.BaselineBucket{Bucket: bucket, Counts: merged})
	return nil
}

func (m *memStore) blobs(image string, bucket time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.buckets[image] {
		if b.Bucket.Equal(bucket) {
			n++
		}
	}
	return n
}

func TestPipelineCompactsClosedBuckets(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(7, 8))
	first := h.clk.Now().Truncate(time.Hour)
	for i := 0; i < 3; i++ { // three flushes into the first bucket
		h.train("nginx", 2, 200, rng)
		for _, w := range h.p.workers {
			w.maintain(h.clk.Now())
		}
	}
	if n := st.blobs("nginx:1", first); n != 3 {
		t.Fatalf("blobs in the first bucket = %d, want 3 (one per flush)", n)
	}
	var events uint64
	for _, w := range h.p.workers {
		if img, ok := w.images["nginx:1"]; ok {
			events = img.model.Stats().Events
		}
	}
	h.clk.Add(time.Hour) // the first bucket closes
	h.train("nginx", 1, 200, rng)
	for _, w := range h.p.workers {
		w.maintain(h.clk.Now())
	}
	if n := st.blobs("nginx:1", first); n != 1 {
		t.Fatalf("blobs in the closed bucket after compaction = %d, want 1", n)
	}
	h.shutdown()
	// The compacted store holds the same counts: a restart restores them.
	h2 := newHarness(t, testConfig(), st)
	var restored uint64
	for _, w := range h2.p.workers {
		if img, ok := w.images["nginx:1"]; ok {
			restored = img.model.Stats().Events
		}
	}
	if restored < events+200 {
		t.Errorf("events after restart = %d, want at least %d learned before the hour plus 200", restored, events)
	}
}

func TestPipelineNewVersionInheritsBaseline(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(9, 10))
	h.train("nginx", 6, 400, rng)
	for _, w := range h.p.workers {
		w.flushBaselines(h.clk.Now())
	}
	// Version 2 of the same repository appears.
	var evs []scorer.Event
	for _, c := range normalTrace(rng, 50) {
		ev := h.event("falco-scorer process observation", "Debug", "c-v2", "nginx", 4242, c, "falco_scorer")
		m := ev.Fields.Map()
		m["container.image.tag"] = "2"
		ev.Fields = scorer.FieldsOf(m)
		evs = append(evs, ev)
	}
	h.accept(evs)
	h.settle()
	var v1, v2 *image
	for _, w := range h.p.workers {
		if img, ok := w.images["nginx:1"]; ok {
			v1 = img
		}
		if img, ok := w.images["nginx:2"]; ok {
			v2 = img
		}
	}
	if v1 == nil || v2 == nil {
		t.Fatalf("images nginx:1 %v, nginx:2 %v; want both live", v1 != nil, v2 != nil)
	}
	if v2.inherited != "nginx:1" {
		t.Errorf("nginx:2 inherited from %q, want nginx:1", v2.inherited)
	}
	if got, base := v2.model.Stats().Events, v1.model.Stats().Events; got < base {
		t.Errorf("nginx:2 learned events = %d, want at least the %d inherited from nginx:1", got, base)
	}
	if m := v2.maturity(); m.Inherited != "nginx:1" {
		t.Errorf("maturity().Inherited = %q, want nginx:1", m.Inherited)
	}
	// The inherited counts are stored under the new image, so they survive a restart.
	if len(st.buckets["nginx:2"]) == 0 {
		t.Error("no stored buckets for nginx:2 after inheriting")
	}
}

func TestPipelineAcceptUnjournaled(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.QueueSize = 64
	h := newHarness(t, cfg, st)
	var evs []scorer.Event
	for i := 0; i < 500; i++ {
		evs = append(evs, h.event("Some rule", "Warning", "c1", "nginx", 1, "execve"))
	}
	if err := h.p.AcceptUnjournaled(context.Background(), "replay", evs); err != nil {
		t.Fatalf("AcceptUnjournaled() error = %v", err)
	}
	h.settle()
	if n := st.journalLen(); n != 0 {
		t.Errorf("journal entries = %d, want 0 (nothing journaled)", n)
	}
	if st.next != 0 {
		t.Errorf("journal appends = %d, want 0", st.next)
	}
	if n := len(st.alerts(t)); n != 500 {
		t.Errorf("alerts in the outbox = %d, want 500", n)
	}
}

// TestPipelineRefusesWhileBacklogged: with the outbox full, Accept refuses
// (ErrBacklogged, an ErrOverloaded) and journals nothing; AcceptUnjournaled
// (replay) waits instead; both go on once the backlog clears.
func TestPipelineRefusesWhileBacklogged(t *testing.T) {
	st := newMemStore()
	var full atomic.Bool
	full.Store(true)
	clk := &clock{t: time.Now()}
	p, err := New(testConfig(), Deps{Journal: st, Sinks: []string{"stdout"}, Now: clk.Now, Backlogged: full.Load},
		zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: clk, tim: clk.Now()}
	ev := []scorer.Event{h.event("Some rule", "Warning", "c1", "nginx", 1, "execve")}
	if err := p.Accept(context.Background(), "test", ev); !errors.Is(err, scorer.ErrBacklogged) || !errors.Is(err, scorer.ErrOverloaded) {
		t.Fatalf("Accept while backlogged = %v, want ErrBacklogged (an ErrOverloaded)", err)
	}
	if st.journalLen() != 0 {
		t.Fatalf("journal = %d after a refused Accept, want 0", st.journalLen())
	}
	done := make(chan error, 1)
	go func() { done <- p.AcceptUnjournaled(context.Background(), "replay", ev) }()
	select {
	case err := <-done:
		t.Fatalf("AcceptUnjournaled returned %v while backlogged, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	full.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("AcceptUnjournaled after the backlog cleared = %v", err)
	}
	if err := p.Accept(context.Background(), "test", ev); err != nil {
		t.Fatalf("Accept after the backlog cleared = %v", err)
	}
}

// TestPipelineCommitWaitsCommitDelay: a lone event is committed once the
// commit delay has passed, not before, and not never.
func TestPipelineCommitWaitsCommitDelay(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.CommitDelay = 300 * time.Millisecond
	h := newHarness(t, cfg, st)
	start := time.Now()
	h.accept([]scorer.Event{h.event("Some rule", "Warning", "c1", "nginx", 1, "execve")})
	for len(st.alerts(t)) == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the event was never committed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < cfg.CommitDelay {
		t.Errorf("committed after %v, want at least the commit delay %v", took, cfg.CommitDelay)
	}
	if n := st.journalLen(); n != 0 {
		t.Errorf("journal after the commit = %d, want 0", n)
	}
}

// TestPipelineObservationsWithoutTags: Falco with
// json_include_tags_property: false sends no tags; the shipped observation
// rules are still scored and learned, not forwarded as Falco alerts, while a
// stock rule without tags is still an alert.
func TestPipelineObservationsWithoutTags(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	evs := []scorer.Event{
		h.event("falco-scorer process observation", "Debug", "c1", "nginx", 1, "execve"),
		h.event("falco-scorer file observation", "Debug", "c1", "nginx", 1, "openat"),
		h.event("Terminal shell in container", "Notice", "c1", "nginx", 1, "execve"),
	}
	h.accept(evs)
	h.settle()
	alerts := st.alerts(t)
	var rules []any
	for _, a := range alerts {
		rules = append(rules, a["falco"].(map[string]any)["rule"])
	}
	if len(rules) != 1 || rules[0] != "Terminal shell in container" {
		t.Errorf("alerts for rules %q, want only the stock rule's", rules)
	}
}
