package scorer

import (
	"math/rand/v2"
	"testing"
	"time"
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
		if img.state != StateMonitoring {
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
		if a["kind"] == KindEnd {
			end = a
		}
		if a["kind"] == KindAnomaly {
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
	h.accept([]Event{shell, late})
	h.settle()
	alerts := st.alerts(t)[n1:]
	if len(alerts) != 2 {
		t.Fatalf("alerts after the Falco events = %d, want 2", len(alerts))
	}
	raised := alerts[0]
	if v := raised["score"].(map[string]any)["verdict"]; v != VerdictAnomalous {
		t.Errorf("Falco alert a minute after the end-of-process anomaly: verdict %v, want %s", v, VerdictAnomalous)
	}
	ref, ok := raised["anomaly"].(map[string]any)
	if !ok {
		t.Fatalf("Falco alert after the anomaly does not name it: %v", raised)
	}
	if ref["id"] != end["id"] || ref["kind"] != KindEnd {
		t.Errorf("anomaly named = id %v kind %v, want id %v kind %s", ref["id"], ref["kind"], end["id"], KindEnd)
	}
	if ref["score"] != end["score"].(map[string]any)["value"] {
		t.Errorf("anomaly score named = %v, want %v", ref["score"], end["score"].(map[string]any)["value"])
	}
	if ref["time"] != end["time"] {
		t.Errorf("anomaly time named = %v, want %v", ref["time"], end["time"])
	}
	if v := alerts[1]["score"].(map[string]any)["verdict"]; v == VerdictAnomalous {
		t.Errorf("Falco alert 4 minutes after the anomaly (recent_anomaly 3m): verdict %v, want not anomalous", v)
	}
	if _, ok := alerts[1]["anomaly"]; ok {
		t.Errorf("Falco alert after recent_anomaly names an anomaly: %v", alerts[1]["anomaly"])
	}
}
