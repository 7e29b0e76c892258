package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// onWorker runs fn on the goroutine of the worker that owns image and
// waits for it, so that tests read and change worker state without racing.
func (h *harness) onWorker(image string, fn func(w *worker)) {
	h.t.Helper()
	w := h.p.workers[maphash.String(h.p.seed, image)%uint64(len(h.p.workers))]
	done := make(chan struct{})
	w.ctl <- func() { fn(w); close(done) }
	<-done
}

// flushAll writes every worker's learned counts to the store.
func (h *harness) flushAll() {
	for _, w := range h.p.workers {
		done := make(chan struct{})
		w.ctl <- func() { w.flushBaselines(h.clk.Now()); close(done) }
		<-done
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	return m.GetCounter().GetValue()
}

// TestPoisoningGuardHoldsAlarmEventsAfterAlarmFalls: in a process longer
// than learnDelay, the events that raised an alarm (and those queued while
// it was on) are still in the learning queue when the alarm falls; they must
// be dropped, not learned, as they leave it.
func TestPoisoningGuardHoldsAlarmEventsAfterAlarmFalls(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(3, 4))
	h.trainMonitoring(rng)
	h.flushAll() // the model's pending delta now holds only what follows
	n0 := len(st.alerts(t))

	// One long-lived process: normal, hijacked for a while, normal again.
	calls := normalTrace(rng, 1100)
	calls = append(calls, attackTrace(400)...)
	calls = append(calls, normalTrace(rng, 1500)...)
	h.accept(h.observations("c-nginx", "nginx", 4242, calls))
	h.settle()
	if k := kinds(st.alerts(t)[n0:]); k[scorer.KindAnomaly] != 1 {
		t.Fatalf("anomaly alerts for the hijacked process = %d, want 1 (%v)", k[scorer.KindAnomaly], k)
	}

	var learned markov.Delta
	var seqAlarm bool
	h.onWorker("nginx:1", func(w *worker) {
		learned = w.images["nginx:1"].model.TakeDelta()
		seqAlarm = w.seqs[seqKey{"c-nginx", 4242}].Value.(*sequence).alarm.On()
	})
	if seqAlarm {
		t.Fatal("the alarm is still on after 1,500 normal events; the test needs it fallen")
	}
	if learned.Events() == 0 {
		t.Fatal("nothing learned from the process: want its events before the alarm and those after it fell")
	}
	mc := markov.DefaultConfig()
	mc.Order, mc.VocabSize = testConfig().Order, testConfig().MaxVocabulary
	m, err := markov.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(learned, +1); err != nil {
		t.Fatalf("Apply(learned delta) = %v", err)
	}
	for _, call := range []string{"setuid", "ptrace", "dup2", "connect", "chmod"} {
		if m.Lookup(call) != markov.OOV {
			t.Errorf("attack call %q was learned into the baseline after the alarm fell", call)
		}
	}
}

// trainedBucket is one stored bucket holding n learned events of a normal
// web-server process.
func trainedBucket(t *testing.T, w *worker, n int, at time.Time) scorer.BaselineBucket {
	t.Helper()
	img := w.newImage("scratch", at)
	var hist markov.History
	for _, c := range normalTrace(rand.New(rand.NewPCG(1, 1)), n) {
		s := img.model.Intern(c)
		img.model.Learn(&hist, s)
		hist.Push(s)
	}
	blob, err := img.model.TakeDelta().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return scorer.BaselineBucket{Bucket: at.Truncate(time.Hour), Counts: blob}
}

func newIdlePipeline(t *testing.T, cfg Config, now time.Time) *Pipeline {
	t.Helper()
	p, err := New(cfg, Deps{Journal: newMemStore(), Now: func() time.Time { return now }}, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return p
}

// TestBaselineOfOtherSymbolsLearnsAfresh: a stored baseline counted in
// another symbol language (a version 1 store of evt.type alone, or a
// changed symbols config) is not loaded: the image learns afresh, and its
// old buckets stay unloaded after the next restart too.
func TestBaselineOfOtherSymbolsLearnsAfresh(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cfg := testConfig()
	p := newIdlePipeline(t, cfg, now)
	w := p.workers[0]
	old := trainedBucket(t, w, int(cfg.graduationFloor())+100, now.Add(-3*time.Hour))
	since := p.horizonStart(now)
	other := cfg.Symbols
	other.PathDepth++
	for name, meta := range map[string]string{
		"version 1":     `{"v":1,"state":"monitoring","threshold":9,"end_threshold":1.5}`,
		"other symbols": `{"v":2,"state":"monitoring","threshold":9,"end_threshold":1.5,"symbols":` + strconv.Quote(other.Fingerprint()) + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := w.restoreImage("nginx:1", []byte(meta), []scorer.BaselineBucket{old}, since)
			if err != nil {
				t.Fatalf("restoreImage() error = %v", err)
			}
			if got.state != scorer.StateLearning || got.model.Events() != 0 || !math.IsInf(got.threshold, 1) {
				t.Errorf("restored state %s, %d events, threshold %v; want learning afresh", got.state, got.model.Events(), got.threshold)
			}
			// Its next flush stores the new language; the old bucket stays unloaded.
			again, err := w.restoreImage("nginx:1", got.meta(), []scorer.BaselineBucket{old}, since)
			if err != nil {
				t.Fatalf("second restoreImage() error = %v", err)
			}
			if again.model.Events() != 0 {
				t.Errorf("after restart the old bucket's %d events came back", again.model.Events())
			}
		})
	}
}

// TestThresholdsSurviveStoreRoundTrip: each threshold comes back from the
// store as it was; not calibrated (+Inf) stays not calibrated, also from
// stores written before null was used for it (0).
func TestThresholdsSurviveStoreRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cfg := testConfig()
	cfg.CusumThreshold = 0 // calibrated thresholds, which the store must keep
	p := newIdlePipeline(t, cfg, now)
	w := p.workers[0]
	bucket := trainedBucket(t, w, int(cfg.graduationFloor())+100, now)
	since := p.horizonStart(now)
	inf := math.Inf(1)

	roundTrip := []struct {
		name          string
		state         string
		thr, endThr   float64
		wantThr, wEnd float64
	}{
		{"monitoring, end not calibrated", scorer.StateMonitoring, 9, inf, 9, inf},
		{"monitoring, both calibrated", scorer.StateMonitoring, 9, 2.5, 9, 2.5},
		{"monitoring, negative end threshold", scorer.StateMonitoring, 9, -0.25, 9, -0.25},
		{"learning", scorer.StateLearning, inf, inf, inf, inf},
	}
	for _, tc := range roundTrip {
		t.Run(tc.name, func(t *testing.T) {
			img := w.newImage("nginx:1", now)
			img.state, img.threshold, img.endThreshold = tc.state, tc.thr, tc.endThr
			got, err := w.restoreImage("nginx:1", img.meta(), []scorer.BaselineBucket{bucket}, since)
			if err != nil {
				t.Fatalf("restoreImage() error = %v", err)
			}
			if got.state != tc.state || got.threshold != tc.wantThr || got.endThreshold != tc.wEnd {
				t.Errorf("restored state %s threshold %v end threshold %v, want %s %v %v",
					got.state, got.threshold, got.endThreshold, tc.state, tc.wantThr, tc.wEnd)
			}
		})
	}

	legacy := []struct {
		name          string
		meta          string
		wantThr, wEnd float64
	}{
		{"end threshold stored as 0", `{"v":1,"state":"monitoring","threshold":9,"end_threshold":0}`, 9, inf},
		{"both stored as 0", `{"v":1,"state":"monitoring","threshold":0,"end_threshold":0}`, inf, inf},
		{"window 0, end calibrated", `{"v":1,"state":"monitoring","threshold":0,"end_threshold":1.5}`, inf, 1.5},
		{"null", `{"v":1,"state":"monitoring","threshold":9,"end_threshold":null}`, 9, inf},
	}
	// Version 1 stores counted evt.type alone: a pipeline in that symbol
	// mode reads them on.
	typeCfg := cfg
	typeCfg.Symbols.Mode = symbol.ModeType
	legacyW := newIdlePipeline(t, typeCfg, now).workers[0]
	for _, tc := range legacy {
		t.Run("stored "+tc.name, func(t *testing.T) {
			got, err := legacyW.restoreImage("nginx:1", []byte(tc.meta), []scorer.BaselineBucket{bucket}, since)
			if err != nil {
				t.Fatalf("restoreImage() error = %v", err)
			}
			if got.threshold != tc.wantThr || got.endThreshold != tc.wEnd {
				t.Errorf("restored threshold %v end threshold %v, want %v %v", got.threshold, got.endThreshold, tc.wantThr, tc.wEnd)
			}
			if got.endCalibrated() != !math.IsInf(tc.wEnd, 1) {
				t.Errorf("endCalibrated() = %v for end threshold %v", got.endCalibrated(), got.endThreshold)
			}
		})
	}

	img := w.newImage("nginx:1", now)
	img.state, img.threshold = scorer.StateMonitoring, 9
	var stored map[string]any
	if err := json.Unmarshal(img.meta(), &stored); err != nil {
		t.Fatal(err)
	}
	if v, ok := stored["end_threshold"]; !ok || v != nil {
		t.Errorf("stored end_threshold = %v (present %v), want null", v, ok)
	}
	if d := DescribeMeta(img.meta()); d["end_threshold"] != nil || d["threshold"] != 9.0 {
		t.Errorf("DescribeMeta thresholds = %v, %v; want 9 and nil (not calibrated)", d["threshold"], d["end_threshold"])
	}
}

// TestPipelineUncalibratedEndThresholdSurvivesRestart: an image that
// graduated on window scores before enough processes ended to calibrate
// its end threshold must not come back from a restart with end threshold 0
// (every finished process alerting as sequence_end).
func TestPipelineUncalibratedEndThresholdSurvivesRestart(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(5, 6))
	h.train("nginx", 12, 400, rng) // 12 processes: far fewer than the 100 an end threshold needs
	var before float64
	h.onWorker("nginx:1", func(w *worker) { before = w.images["nginx:1"].endThreshold })
	if !math.IsInf(before, 1) {
		t.Fatalf("end threshold before the restart = %v, want +Inf (not calibrated)", before)
	}
	h.flushAll()
	h.shutdown()
	n0 := len(st.alerts(t))

	h2 := newHarness(t, cfg, st)
	h2.seq, h2.tim = h.seq+10, h.tim.Add(time.Second)
	var state string
	var after float64
	h2.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		state, after = img.state, img.endThreshold
	})
	if state != scorer.StateMonitoring || !math.IsInf(after, 1) {
		t.Fatalf("after the restart state %q end threshold %v, want monitoring +Inf", state, after)
	}
	// Normal processes whose loops are cut short now and then (a client
	// closing early): some score above 0 over their whole trace.
	variant := func(n int) []string {
		loops := [][]string{
			{"accept", "read", "openat", "fstat", "read", "close", "write", "close"},
			{"accept", "read", "close"}, {"read", "accept", "write", "close"},
			{"epoll_wait", "read", "write"},
			{"openat", "mmap", "read", "munmap", "close"},
		}
		var out []string
		for len(out) < n {
			out = append(out, loops[rng.IntN(len(loops))]...)
		}
		return out[:n]
	}
	for i := 0; i < 10; i++ {
		pid := 5000 + i
		evs := h2.observations("c-nginx", "nginx", pid, variant(40))
		evs = append(evs, h2.event("falco-scorer process observation", "Debug", "c-nginx", "nginx", pid, "procexit", "falco_scorer"))
		h2.accept(evs)
	}
	h2.settle()
	if k := kinds(st.alerts(t)[n0:]); k[scorer.KindEnd] != 0 {
		t.Errorf("sequence_end alerts on 10 normal processes after the restart = %d, want 0 (end threshold not calibrated)", k[scorer.KindEnd])
	}
}

// TestPipelineExpiredBaselineRelearnsOnLoad: an image not seen for longer
// than the horizon comes back with an empty model; it must learn again,
// not monitor with its old thresholds.
func TestPipelineExpiredBaselineRelearnsOnLoad(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Horizon = 2 * time.Hour
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(7, 8))
	h.trainMonitoring(rng)
	h.flushAll()
	h.shutdown()
	n0 := len(st.alerts(t))

	h2 := newHarnessAt(t, cfg, st, h.clk.Now().Add(3*time.Hour))
	h2.seq, h2.tim = h.seq+10, h.tim.Add(3*time.Hour)
	var img image
	h2.onWorker("nginx:1", func(w *worker) { img = *w.images["nginx:1"] })
	if img.state != scorer.StateLearning || !math.IsInf(img.threshold, 1) || !math.IsInf(img.endThreshold, 1) ||
		img.conv.Events != 0 || img.win.n() != 0 || img.end.n() != 0 || len(img.blockRates) != 0 {
		t.Errorf("expired baseline after load: state %s thresholds %v/%v convergence events %d calib %d/%d block rates %d; want learning from scratch",
			img.state, img.threshold, img.endThreshold, img.conv.Events, img.win.n(), img.end.n(), len(img.blockRates))
	}
	if n := counterValue(t, h2.p.met.expired.WithLabelValues("load")); n != 1 {
		t.Errorf("baselines_expired_total{reason=load} = %v, want 1", n)
	}
	h2.train("nginx", 5, 400, rng) // the same normal behaviour as before
	if k := kinds(st.alerts(t)[n0:]); k[scorer.KindAnomaly]+k[scorer.KindEnd] > 0 {
		t.Errorf("alerts on normal processes after the horizon = %v, want none", k)
	}
}

func newHarnessAt(t *testing.T, cfg Config, st *memStore, at time.Time) *harness {
	t.Helper()
	clk := &clock{t: at}
	p, err := New(cfg, Deps{Journal: st, Baselines: st, Sinks: []string{"stdout"}, Now: clk.Now},
		zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	h := &harness{t: t, p: p, st: st, clk: clk, done: make(chan error, 1), tim: clk.Now()}
	h.ctx, h.stop = context.WithCancel(context.Background())
	go func() { h.done <- p.Run(h.ctx) }()
	<-p.Ready()
	t.Cleanup(func() { h.shutdown() })
	return h
}

// TestRollHorizonExpiresThinBaseline: when rolling the horizon empties a
// live monitoring image's model, it goes back to learning, once.
func TestRollHorizonExpiresThinBaseline(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Horizon = 2 * time.Hour
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(5, 6))
	h.train("nginx", 12, 400, rng)
	h.flushAll()
	later := h.clk.Now().Add(3 * time.Hour)
	var img image
	h.onWorker("nginx:1", func(w *worker) {
		w.rollHorizon(later)
		w.rollHorizon(later.Add(time.Hour))
		img = *w.images["nginx:1"]
	})
	if ev := img.model.Events(); ev != 0 {
		t.Fatalf("events after the horizon passed = %d, want 0", ev)
	}
	if img.state != scorer.StateLearning || !math.IsInf(img.threshold, 1) || !math.IsInf(img.endThreshold, 1) || img.conv.Events != 0 || img.win.n() != 0 {
		t.Errorf("after the horizon: state %s thresholds %v/%v convergence events %d window sample %d; want learning from scratch",
			img.state, img.threshold, img.endThreshold, img.conv.Events, img.win.n())
	}
	if n := counterValue(t, h.p.met.expired.WithLabelValues("horizon")); n != 1 {
		t.Errorf("baselines_expired_total{reason=horizon} = %v, want 1", n)
	}
	var m dto.Metric
	if err := h.p.met.images.WithLabelValues(scorer.StateMonitoring).Write(&m); err != nil || m.GetGauge().GetValue() != 0 {
		t.Errorf("images{state=monitoring} = %v, want 0", m.GetGauge().GetValue())
	}
}

// TestPipelineReloadAfterEvictionKeepsUnflushedCounts: an image evicted
// with counts not flushed yet and reloaded before the next flush must come
// back with those counts (the store gets them at that flush), or the live
// model and the store disagree.
func TestPipelineReloadAfterEvictionKeepsUnflushedCounts(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Workers, cfg.MaxImages = 1, 1
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(9, 10))
	h.train("nginx", 6, 400, rng)
	var events uint64
	var state string
	h.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		events, state = img.model.Events(), img.state
	})
	if events == 0 {
		t.Fatal("nothing learned")
	}
	// Another image takes nginx's place, then nginx comes back, all within
	// one flush interval.
	h.accept(h.observations("c-redis", "redis", 1, []string{"read"}))
	h.accept(h.observations("c-nginx", "nginx", 9999, []string{"read"}))
	h.settle()
	var reloaded uint64
	var reState string
	var evicted float64
	h.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		reloaded, reState = img.model.Events(), img.state
		evicted = counterValue(t, w.p.met.imagesEvicted)
	})
	if evicted < 2 {
		t.Fatalf("images evicted = %v, want 2 (nginx, then redis)", evicted)
	}
	if reloaded != events || reState != state {
		t.Errorf("reloaded nginx: %d events, state %s; want the %d events and state %s it was evicted with", reloaded, reState, events, state)
	}
	// The store, once flushed, holds what the live model holds.
	h.shutdown() // learns the live sequences' queued events, flushes
	live := h.p.workers[0].images["nginx:1"].model.Events()
	h2 := newHarness(t, cfg, st)
	var restored uint64
	h2.onWorker("nginx:1", func(w *worker) { restored = w.images["nginx:1"].model.Events() })
	if restored != live {
		t.Errorf("events restored from the store = %d, want the %d of the live model", restored, live)
	}
}

// TestFalcoAlertTimedBeforeAnomalyIsNotRecent: a Falco alert counts as
// following its container's anomaly only from anomalySkew before it to
// recentAnomaly after it.
func TestFalcoAlertTimedBeforeAnomalyIsNotRecent(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(1, 2))
	h.train("nginx", 12, 400, rng)
	start := h.tim
	evs := h.observations("c-nginx", "nginx", 66666, attackTrace(60))
	evs = append(evs, h.event("falco-scorer process observation", "Debug", "c-nginx", "nginx", 66666, "procexit", "falco_scorer"))
	h.accept(evs) // the episode ends with the process: only the time window counts now
	h.settle()
	n0 := len(st.alerts(t))
	if k := kinds(st.alerts(t)); k[scorer.KindAnomaly] != 1 {
		t.Fatalf("anomaly alerts for the attack = %d, want 1", k[scorer.KindAnomaly])
	}
	tests := []struct {
		name      string
		at        time.Time
		anomalous bool
	}{
		{"a minute before", start.Add(-time.Minute), false},
		{"within the skew before", start.Add(-anomalySkew + time.Second), true},
		{"a minute after", start.Add(time.Minute), true},
		{"after recentAnomaly", start.Add(recentAnomaly + time.Minute), false},
	}
	var falco []scorer.Event
	for _, tc := range tests {
		h.tim = tc.at
		falco = append(falco, h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66667, "execve", "shell"))
	}
	h.accept(falco)
	h.settle()
	alerts := st.alerts(t)[n0:]
	if len(alerts) != len(tests) {
		t.Fatalf("alerts = %d, want %d", len(alerts), len(tests))
	}
	for i, tc := range tests {
		got := alerts[i]["score"].(map[string]any)["verdict"] == scorer.VerdictAnomalous
		if got != tc.anomalous {
			t.Errorf("Falco alert %s the anomaly: anomalous = %v, want %v", tc.name, got, tc.anomalous)
		}
	}
}

// LoadImage makes memStore an ImageLoader, as the service's store is, so
// that an evicted image is reloaded from it.
func (m *memStore) LoadImage(image string, since time.Time) ([]byte, []scorer.BaselineBucket, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failLoads > 0 {
		m.failLoads--
		return nil, nil, false, errors.New("load image: injected read error")
	}
	bs, ok := m.buckets[image]
	if !ok && m.meta[image] == nil {
		return nil, nil, false, nil
	}
	var keep []scorer.BaselineBucket
	for _, b := range bs {
		if !b.Bucket.Before(since) {
			keep = append(keep, b)
		}
	}
	return m.meta[image], keep, true, nil
}

// TestLearningImageNeedsItsEventsToGraduate: a learning image whose
// convergence and window sample say "ready" but whose early counts the
// rolling horizon took away does not graduate on a model it no longer holds.
func TestLearningImageNeedsItsEventsToGraduate(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Horizon = 2 * time.Hour
	h := newHarness(t, cfg, st)
	h.train("nginx", 12, 400, rand.New(rand.NewPCG(7, 8)))
	h.flushAll()
	later := h.clk.Now().Add(3 * time.Hour)
	var before, after bool
	var events uint64
	h.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		img.state = scorer.StateLearning // as if it had not graduated yet
		w.p.met.images.WithLabelValues(scorer.StateMonitoring).Dec()
		w.p.met.images.WithLabelValues(scorer.StateLearning).Inc()
		before = img.ready(w.p.cfg)
		w.rollHorizon(later)
		w.rollHorizon(later.Add(time.Hour))
		events = img.model.Events()
		after = img.ready(w.p.cfg)
	})
	if !before {
		t.Fatal("the trained image is not ready to graduate: the test does not set up its case")
	}
	if events != 0 || after {
		t.Errorf("after the horizon took its counts (%d events left): ready = %v, want false", events, after)
	}
}

// TestLoadFailureKeepsStoredBaseline: when an evicted image's baseline
// cannot be read back (a transient store error), the image learns in a
// stand-in meanwhile, but the stand-in's flushes add its counts without
// replacing the stored state (monitoring, thresholds), and the load is
// tried again later.
func TestLoadFailureKeepsStoredBaseline(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(3, 4))
	h.trainMonitoring(rng)
	var trained uint64
	h.onWorker("nginx:1", func(w *worker) {
		trained = w.images["nginx:1"].model.Events()
		w.evictImage(w.images["nginx:1"])
	})
	h.flushAll()
	storedState := func() string {
		st.mu.Lock()
		defer st.mu.Unlock()
		var m imageMeta
		if err := json.Unmarshal(st.meta["nginx:1"], &m); err != nil {
			t.Fatalf("stored meta: %v", err)
		}
		return m.State
	}
	if s := storedState(); s != scorer.StateMonitoring {
		t.Fatalf("stored state after eviction = %q, want monitoring", s)
	}

	st.mu.Lock()
	st.failLoads = 1
	st.mu.Unlock()
	h.train("nginx", 1, 100, rng)
	if s, _ := h.state("nginx:1"); s != scorer.StateLearning {
		t.Fatalf("state while the baseline cannot be read = %q, want learning (a stand-in)", s)
	}
	var standIn uint64
	h.onWorker("nginx:1", func(w *worker) { standIn = w.images["nginx:1"].model.Events() })
	h.flushAll()
	if s := storedState(); s != scorer.StateMonitoring {
		t.Errorf("stored state after the stand-in's flush = %q, want monitoring (unchanged)", s)
	}

	h.clk.Add(2 * loadRetryInterval)
	h.tim = h.tim.Add(2 * loadRetryInterval)
	h.train("nginx", 1, 100, rng)
	if s, _ := h.state("nginx:1"); s != scorer.StateMonitoring {
		t.Errorf("state once the baseline can be read again = %q, want monitoring", s)
	}
	var reloaded uint64
	h.onWorker("nginx:1", func(w *worker) { reloaded = w.images["nginx:1"].model.Events() })
	if standIn == 0 || reloaded < trained+standIn {
		t.Errorf("reloaded model holds %d events, want at least the %d trained plus the %d the stand-in learned", reloaded, trained, standIn)
	}
}
