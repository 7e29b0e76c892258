package pipeline

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// TestFalcoAlertAfterEndOfProcessAnomaly: a Falco alert from a container
// whose process just ended with an anomalous whole-trace verdict (no window
// alarm, so no live episode) is raised as anomalous and names that anomaly;
// one after the configured recent_anomaly interval is not.
func TestFalcoAlertAfterEndOfProcessAnomaly(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.RecentAnomaly = 3 * time.Minute
	h := newHarness(t, cfg, st)
	h.train("nginx", 12, 400, rand.New(rand.NewPCG(1, 2)))
	// Only the whole-trace verdict can fire: no window alarm, any finished
	// trace of eight events or more is anomalous.
	h.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		if img.state != scorer.StateMonitoring {
			t.Fatalf("after training state = %q, want monitoring", img.state)
		}
		img.threshold, img.endThreshold = 1e9, -1e9
	})
	n0 := len(st.alerts(t))
	evs := h.observations("c-nginx", "nginx", 66666, attackTrace(20))
	evs = append(evs, h.event("falco-scorer process observation", "Debug", "c-nginx", "nginx", 66666, "procexit", "falco_scorer"))
	h.accept(evs)
	h.settle()
	var end map[string]any
	for _, a := range st.alerts(t)[n0:] {
		if a["kind"] == scorer.KindEnd {
			end = a
		}
		if a["kind"] == scorer.KindAnomaly {
			t.Fatalf("window anomaly alert %v, want only the end-of-process one", a["id"])
		}
	}
	if end == nil {
		t.Fatalf("no sequence_end alert after the anomalous process; alerts %v", kinds(st.alerts(t)[n0:]))
	}
	endTime := h.tim
	n1 := len(st.alerts(t))
	h.tim = endTime.Add(time.Minute)
	shell := h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66667, "execve", "shell")
	h.tim = endTime.Add(4 * time.Minute)
	late := h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66668, "execve", "shell")
	h.accept([]scorer.Event{shell, late})
	h.settle()
	alerts := st.alerts(t)[n1:]
	if len(alerts) != 2 {
		t.Fatalf("alerts after the Falco events = %d, want 2", len(alerts))
	}
	raised := alerts[0]
	if v := raised["score"].(map[string]any)["verdict"]; v != scorer.VerdictAnomalous {
		t.Errorf("Falco alert a minute after the end-of-process anomaly: verdict %v, want %s", v, scorer.VerdictAnomalous)
	}
	ref, ok := raised["anomaly"].(map[string]any)
	if !ok {
		t.Fatalf("Falco alert after the anomaly does not name it: %v", raised)
	}
	if ref["id"] != end["id"] || ref["kind"] != scorer.KindEnd {
		t.Errorf("anomaly named = id %v kind %v, want id %v kind %s", ref["id"], ref["kind"], end["id"], scorer.KindEnd)
	}
	if ref["score"] != end["score"].(map[string]any)["value"] {
		t.Errorf("anomaly score named = %v, want %v", ref["score"], end["score"].(map[string]any)["value"])
	}
	if ref["time"] != end["time"] {
		t.Errorf("anomaly time named = %v, want %v", ref["time"], end["time"])
	}
	if v := alerts[1]["score"].(map[string]any)["verdict"]; v == scorer.VerdictAnomalous {
		t.Errorf("Falco alert 4 minutes after the anomaly (recent_anomaly 3m): verdict %v, want not anomalous", v)
	}
	if _, ok := alerts[1]["anomaly"]; ok {
		t.Errorf("Falco alert after recent_anomaly names an anomaly: %v", alerts[1]["anomaly"])
	}
}

// TestPipelineAlertsHaveNoZeroValues: the alerts the pipeline emits, of
// every kind (window anomaly, end of process, Falco alert following an
// anomaly, in a normal container, from an image never observed), say
// nothing they do not know: no zero score, threshold or time standing for
// "none", no empty baseline state.
func TestPipelineAlertsHaveNoZeroValues(t *testing.T) {
	st := newMemStore()
	// As the rules do: a band for every alert (from the ratio), its own
	// priority for a Falco alert.
	bands := scorer.DeciderFunc(func(a *scorer.Alert, now time.Time) scorer.Decision {
		d := scorer.Decision{Priority: scorer.PriorityWarning, Band: "none", Sinks: []string{"stdout"}}
		if a.Kind == scorer.KindFalco {
			d.Priority = a.Event.Priority
		}
		if a.Score.HasValue() && a.Score.Ratio >= 1 {
			d.Band = "low"
		}
		return d
	})
	h := newHarnessDecider(t, testConfig(), st, bands)
	rng := rand.New(rand.NewPCG(1, 2))
	h.trainMonitoring(rng)
	n0 := len(st.alerts(t))
	// A window anomaly, and a Falco alert in its container.
	h.accept(h.observations("c-nginx", "nginx", 66666, attackTrace(60)))
	h.accept([]scorer.Event{h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66667, "execve", "shell")})
	// A Falco alert in another container of the image, and one from an
	// image never observed.
	h.accept([]scorer.Event{h.event("Read sensitive file untrusted", "Warning", "c-nginx-2", "nginx", 7001, "openat"),
		h.event("Terminal shell in container", "Notice", "c-busybox", "busybox", 7002, "execve", "shell")})
	h.settle()
	// An end-of-process anomaly only.
	h.onWorker("nginx:1", func(w *worker) {
		img := w.images["nginx:1"]
		img.threshold, img.endThreshold = 1e9, 1e-3
	})
	evs := h.observations("c-nginx-3", "nginx", 66668, attackTrace(20))
	evs = append(evs, h.event("falco-scorer process observation", "Debug", "c-nginx-3", "nginx", 66668, "procexit", "falco_scorer"))
	h.accept(evs)
	h.settle()

	seen := map[string]int{}
	for _, a := range st.alerts(t)[n0:] {
		name := a["kind"].(string) + "/" + a["score"].(map[string]any)["verdict"].(string)
		seen[name]++
		for _, z := range scorertest.ZeroValues(a) {
			t.Errorf("%s alert %v has a zero value at %s", name, a["id"], z)
		}
		_, hasValue := a["score"].(map[string]any)["value"]
		if anomalous := a["score"].(map[string]any)["verdict"] == scorer.VerdictAnomalous; hasValue != anomalous {
			t.Errorf("%s alert: score.value present %v, want %v", name, hasValue, anomalous)
		}
	}
	for _, want := range []string{"anomaly/anomalous", "sequence_end/anomalous", "falco/anomalous", "falco/normal", "falco/unscored"} {
		if seen[want] == 0 {
			t.Errorf("no %s alert among %v", want, seen)
		}
	}
}

// newHarnessDecider is newHarness with the rules played by d.
func newHarnessDecider(t *testing.T, cfg Config, st *memStore, d scorer.Decider) *harness {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	p, err := New(cfg, Deps{Journal: st, Baselines: st, Sinks: []string{"stdout"}, Now: clk.Now, Decider: d},
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
