package pipeline

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestRelearnCalmsLiveAlarms: a sequence whose alarm is on when the horizon
// sends its image back to learning (where alarms are not updated) leaves its
// episode: the container stops counting as anomalous, later normal events of
// the sequence are learned, and the events the alarm held back stay held.
func TestRelearnCalmsLiveAlarms(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Horizon = 2 * time.Hour
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(5, 6))
	h.train("nginx", 12, 400, rng)
	h.flushAll()
	// a long-lived process is hijacked: alarm on, container anomalous
	h.accept(h.observations("c-nginx", "nginx", 66666, attackTrace(60)))
	h.settle()
	later := h.clk.Now().Add(3 * time.Hour)
	var state string
	h.onWorker("nginx:1", func(w *worker) {
		w.rollHorizon(later)
		w.rollHorizon(later.Add(time.Hour))
		state = w.images["nginx:1"].state
	})
	if state != scorer.StateLearning {
		t.Fatalf("state %s, want learning after the horizon emptied the model", state)
	}
	// The process goes on behaving normally for a long while.
	h.accept(h.observations("c-nginx", "nginx", 66666, normalTrace(rng, 3000)))
	h.settle()
	var on bool
	var anomalous int
	var events uint64
	h.onWorker("nginx:1", func(w *worker) {
		on = w.seqs[seqKey{"c-nginx", 66666}].Value.(*sequence).alarm.On()
		anomalous = w.containers["c-nginx"].anomalous
		events = w.images["nginx:1"].model.Events()
	})
	held := counterValue(t, h.p.met.heldBack)
	t.Logf("alarm on %v, container anomalous %d, model events %d, held back %v", on, anomalous, events, held)
	// An hour later (event time), a stock Falco rule fires in the container.
	h.tim = h.tim.Add(time.Hour)
	n0 := len(st.alerts(t))
	h.accept([]scorer.Event{h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 777, "execve", "shell")})
	h.settle()
	a := st.alerts(t)[n0]
	verdict := a["score"].(map[string]any)["verdict"]
	if held < 60 {
		t.Errorf("events held back = %v, want the 60 attack events to stay held", held)
	}
	if on || anomalous != 0 || verdict == scorer.VerdictAnomalous || events == 0 {
		t.Errorf("after the image went back to learning: alarm on %v, container anomalous count %d, model events %d (3,000 normal events of the process learned: want > 0), Falco alert an hour later verdict %v (want learning)", on, anomalous, events, verdict)
	}
}

// A Falco alert that followed an earlier anomaly of its container by two
// minutes, processed after a later anomaly of the same container.
func TestFalcoAlertAfterEarlierAnomalyEpisode(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(1, 2))
	h.train("nginx", 12, 400, rng)
	attack := func(pid int) {
		evs := h.observations("c-nginx", "nginx", pid, attackTrace(60))
		evs = append(evs, h.event("falco-scorer process observation", "Debug", "c-nginx", "nginx", pid, "procexit", "falco_scorer"))
		h.accept(evs)
		h.settle()
	}
	t0 := h.tim
	attack(66666)
	h.tim = t0.Add(5 * time.Minute)
	attack(66668)
	if k := kinds(st.alerts(t)); k[scorer.KindAnomaly] != 2 {
		t.Fatalf("anomalies %v, want 2", k)
	}
	n0 := len(st.alerts(t))
	h.tim = t0.Add(2 * time.Minute) // 2 min after the first anomaly, 3 min before the second
	h.accept([]scorer.Event{h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 777, "execve", "shell")})
	h.settle()
	if v := st.alerts(t)[n0]["score"].(map[string]any)["verdict"]; v != scorer.VerdictAnomalous {
		t.Errorf("Falco alert 2 minutes after the container's first anomaly: verdict %v, want anomalous", v)
	}
}
