package sinks_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenAlerts returns one alert of each kind the scorer emits, as the
// pipeline fills them.
func goldenAlerts() map[string]*scorer.Alert {
	graduated := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	mature := scorer.Maturity{State: scorer.StateMonitoring, Events: 120000, Transitions: 812,
		Since: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), Graduated: graduated}

	anomaly := sinkstest.AnomalyAlert(2, "nginx:1.27")
	anomaly.Baseline = mature
	anomaly.Score.Band = "low"
	anomaly.Score.Value, anomaly.Score.Ratio = 20.5, 20.5/15
	anomaly.Score.Threshold = 15

	// An anomaly its process tree raised: a shell's children added up.
	tree := sinkstest.AnomalyAlert(7, "nginx:1.27")
	tree.Baseline = mature
	tree.Score.Band = "low"
	tree.Score.Value, tree.Score.Ratio, tree.Score.Threshold = 16, 16.0/15, 15
	tree.Subject.Process, tree.Subject.Parent, tree.Subject.TreeRootPID, tree.Subject.TreeRoot = "uname", "sh", 4240, "sh"
	tree.Reason = "system-call sequence of the process tree under pid 4240 unusual for this image"

	end := sinkstest.AnomalyAlert(3, "nginx:1.27")
	end.Kind = scorer.KindEnd
	end.ID = scorer.AlertID(end.Event.Raw, scorer.KindEnd)
	end.Baseline = mature
	end.Score.Value, end.Score.Threshold, end.Score.Ratio, end.Score.Band = 4.5, 2.25, 2, "medium"
	end.Reason = `process "bash" ended with a system-call sequence unusual for this image`

	// A Falco alert in a container with no recent anomaly: not scored.
	normal := sinkstest.FalcoAlert(4, "nginx:1.27", "Read sensitive file untrusted")
	normal.Priority = scorer.PriorityNotice
	normal.Baseline = mature
	normal.Explain = nil
	normal.Score = scorer.Score{Band: "none", Verdict: scorer.VerdictNormal, FalcoPriority: scorer.PriorityNotice}
	normal.Reason = `falco rule "Read sensitive file untrusted"`

	// A Falco alert from an image the scorer never observed: no baseline.
	unknown := sinkstest.FalcoAlert(5, "busybox:1.36", "Terminal shell in container")
	unknown.Priority = scorer.PriorityNotice
	unknown.Baseline = scorer.Maturity{}
	unknown.Explain = nil
	unknown.Score = scorer.Score{Band: "none", Verdict: scorer.VerdictUnscored, FalcoPriority: scorer.PriorityNotice}
	unknown.Reason = `falco rule "Terminal shell in container"`

	// A Falco alert following its container's end-of-process anomaly.
	raised := sinkstest.FalcoAlert(6, "nginx:1.27", "Terminal shell in container")
	raised.Priority = scorer.PriorityWarning
	raised.Baseline = mature
	raised.Explain = nil
	raised.Anomaly = &scorer.AnomalyRef{ID: end.ID, Kind: scorer.KindEnd, Time: end.Time, Score: 4.5, Threshold: 2.25,
		Ratio: 2, Process: "bash", PID: end.Subject.PID}
	raised.Score = scorer.Score{Value: 4.5, Threshold: 2.25, Ratio: 2, Band: "medium", Verdict: scorer.VerdictAnomalous,
		FalcoPriority: scorer.PriorityNotice}
	raised.Reason = `falco rule "Terminal shell in container" in a container behaving anomalously (sequence_end alert ` + end.ID + `)`

	return map[string]*scorer.Alert{
		"anomaly": anomaly, "anomaly_process_tree": tree, "sequence_end": end, "falco_normal": normal, "falco_unknown_image": unknown,
		"falco_after_anomaly": raised,
	}
}

// TestAlertGolden: one golden alert JSON per kind; each is valid against
// the schema and holds no zero value standing for "unknown" (a consumer
// could not tell it from a real zero).
func TestAlertGolden(t *testing.T) {
	s := compileSchema(t)
	for name, a := range goldenAlerts() {
		t.Run(name, func(t *testing.T) {
			got, err := a.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON() = %v", err)
			}
			scorertest.Golden(t, filepath.Join("testdata", "alert_"+name+".golden.json"), scorertest.IndentJSON(t, got), *update, "alert JSON")
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(inst); err != nil {
				t.Errorf("Validate() = %v, want valid", err)
			}
			var v any
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatal(err)
			}
			for _, z := range scorertest.ZeroValues(v) {
				t.Errorf("alert JSON has a zero value at %s", z)
			}
		})
	}
}
