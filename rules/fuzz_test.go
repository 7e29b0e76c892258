package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// FuzzParse checks that no rules file makes Parse panic, that every error
// names the file, and that an Engine it returns decides without panicking.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "deploy", "config", "rules.example.yaml")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", ruleSet, "bands: {low: 1, medium: 2, high: 3, critical: 4}\n",
		"rules:\n  - name: a\n    match: {rules: '*', tags: [x], images: '?'}\n    raise: -3\n",
		"dedup: {window: 1ns, kinds: [falco], max_keys: 1}\n",
		"rules:\n  - name: s\n    suppress: {until: 2030-01-01T00:00:00Z, reason: r}\n",
		"a: &a [*a]\n", "rules: [{name: x, sinks: [stdout, stdout]}]\n", "- 1\n", "{{{",
	} {
		f.Add([]byte(s))
	}
	alerts := []*scorer.Alert{
		newAlert(scorer.KindFalco, scorer.PriorityNotice, 3),
		newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.7, withNS("ci-1")),
		newAlert(scorer.KindEnd, scorer.PriorityDebug, 9, withImage("")),
		newAlert("future-kind", scorer.Priority(-5), -1),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b, "fuzz.yaml")
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("Parse error line %q does not start with the file name", line)
				}
			}
			return
		}
		for _, a := range alerts {
			d := e.Decide(a, t0)
			if !d.Priority.Valid() {
				t.Fatalf("Decide priority = %d, want a valid priority", d.Priority)
			}
			if d.Suppressed && len(d.Sinks) > 0 {
				t.Fatalf("Decide suppressed with sinks %v, want none", d.Sinks)
			}
		}
	})
}
