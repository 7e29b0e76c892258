package lab

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// committedRecordings are the lab recordings in testdata: the one the
// defaults were chosen on (and the demo replays), and two recorded later
// with other seeds (one with a 10-minute learning phase), which no choice
// was made on.
var committedRecordings = []string{"testdata", "testdata/holdout", "testdata/longer-learning"}

// TestCommittedCapture checks the committed lab captures against their
// labels and the rules: the shape every consumer relies on.
func TestCommittedCapture(t *testing.T) {
	for _, dir := range committedRecordings {
		t.Run(dir, func(t *testing.T) { checkRecording(t, dir) })
	}
}

func checkRecording(t *testing.T, dir string) {
	l, err := LoadLabels(filepath.Join(dir, LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, CaptureFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)

	attackEvents := map[string]int{}
	learn := map[string]int{} // image -> learning events
	var prev time.Time
	n := 0
	for sc.Scan() {
		n++
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			t.Fatalf("line %d: time: %v", n, err)
		}
		if ts.Before(prev) {
			t.Fatalf("line %d: time %s before the previous event's %s", n, ts, prev)
		}
		prev = ts
		i := slices.IndexFunc(ruleSpecs, func(r ruleSpec) bool { return r.Name == e.Rule })
		if i < 0 {
			t.Fatalf("line %d: rule %q", n, e.Rule)
		}
		if len(e.OutputFields) != len(outputFields(ruleSpecs[i].Output)) {
			t.Fatalf("line %d: %d output fields, rule prints %d", n, len(e.OutputFields), len(outputFields(ruleSpecs[i].Output)))
		}
		et, _ := e.OutputFields["evt.type"].(string)
		if !slices.Contains(ruleSpecs[i].EvtTypes, et) {
			t.Fatalf("line %d: evt.type %q in rule %q", n, et, e.Rule)
		}
		cid, _ := e.OutputFields["container.id"].(string)
		pid := int(e.OutputFields["proc.pid"].(float64))
		run := l.Lookup(cid, pid, ts)
		if ts.Before(l.TestStart) {
			if run != nil && run.Kind == KindAttack {
				t.Fatalf("line %d: attack run %s in the learning phase", n, run.Run)
			}
			repo, _ := e.OutputFields["container.image.repository"].(string)
			learn[repo]++
			continue
		}
		if run != nil && run.Kind == KindAttack {
			attackEvents[run.Run]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for repo, c := range learn {
		if c < 1000 {
			t.Errorf("image %s: %d learning events, want thousands", repo, c)
		}
	}
	if len(learn) < 4 {
		t.Errorf("%d images in learning, want 4", len(learn))
	}
	perScenario := map[string]int{}
	for _, r := range l.Runs {
		if r.Kind != KindAttack {
			continue
		}
		perScenario[r.Scenario]++
		if attackEvents[r.Run] != r.Events {
			t.Errorf("run %s: %d events found by Lookup, labels say %d", r.Run, attackEvents[r.Run], r.Events)
		}
	}
	if len(perScenario) < 8 {
		t.Errorf("%d attack scenarios, want at least 8", len(perScenario))
	}
	for s, c := range perScenario {
		if c < 3 {
			t.Errorf("scenario %s: %d runs, want at least 3", s, c)
		}
	}
}
