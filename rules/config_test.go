package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n"} {
		got, err := ParseConfig([]byte(in), "rules.yaml")
		if err != nil {
			t.Fatalf("ParseConfig(%q) error = %v, want nil", in, err)
		}
		if diff := cmp.Diff(DefaultConfig(), got); diff != "" {
			t.Errorf("ParseConfig(%q) differs from DefaultConfig (-want +got):\n%s", in, diff)
		}
	}
}

func TestParseExampleFile(t *testing.T) {
	path := filepath.Join("..", "deploy", "config", "rules.example.yaml")
	e, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s) error = %v, want nil", path, err)
	}
	if got := len(e.cfg.Rules); got != 4 {
		t.Errorf("example rules = %d, want 4", got)
	}
	// The example documents the defaults: apart from rules it must equal them.
	c := e.cfg
	c.Rules = nil
	c.DefaultSinks = nil
	if diff := cmp.Diff(DefaultConfig(), c); diff != "" {
		t.Errorf("example file's non-rule settings differ from DefaultConfig (-default +example):\n%s", diff)
	}
}

func TestParseDecoding(t *testing.T) {
	in := `
dedup: {window: 90s, kinds: [falco], max_keys: 10}
sinks:
  kafka-audit: {min_priority: info}
rules:
  - name: one
    match:
      rules: "Terminal shell*"
      namespaces: [prod, "stage-*"]
      min_priority: warning
    set_priority: ERROR
    raise: -1
    sinks: [kafka-audit]
  - name: two
    suppress: {until: 2030-01-02T03:04:05Z, reason: noisy}
`
	c, err := ParseConfig([]byte(in), "r.yaml")
	if err != nil {
		t.Fatalf("ParseConfig error = %v, want nil", err)
	}
	if c.Dedup.Window != 90*time.Second {
		t.Errorf("dedup.window = %v, want 1m30s", c.Dedup.Window)
	}
	if got := c.Sinks["kafka-audit"].MinPriority.Priority(); got != scorer.PriorityInformational {
		t.Errorf("sinks.kafka-audit.min_priority = %v, want Informational", got)
	}
	if _, ok := c.Sinks["slack"]; !ok {
		t.Errorf("sinks.slack missing: built-in sinks must stay known when others are added")
	}
	r := c.Rules[0]
	if diff := cmp.Diff(Patterns{"Terminal shell*"}, r.Match.Rules); diff != "" {
		t.Errorf("rules[0].match.rules (-want +got):\n%s", diff)
	}
	if got := r.Match.MinPriority.Priority(); got != scorer.PriorityWarning {
		t.Errorf("rules[0].match.min_priority = %v, want Warning", got)
	}
	if got := r.SetPriority.Priority(); got != scorer.PriorityError {
		t.Errorf("rules[0].set_priority = %v, want Error", got)
	}
	want := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := c.Rules[1].Suppress.Until; !got.Equal(want) {
		t.Errorf("rules[1].suppress.until = %v, want %v", got, want)
	}
}

func TestParsePartialOverride(t *testing.T) {
	c, err := ParseConfig([]byte("anomaly_priority: {low: Error}\nbands: {critical: 10}\nfalco_raise: {high: 1}\n"), "r.yaml")
	if err != nil {
		t.Fatalf("ParseConfig error = %v, want nil", err)
	}
	want := DefaultConfig()
	want.AnomalyPriority.Low = Level(scorer.PriorityError)
	want.Bands.Critical = 10
	want.FalcoRaise.High = 1
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("partial override must keep the other defaults (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings, each must appear
	}{
		{"syntax", "bands: [\n", []string{"r.yaml:"}},
		{"unknown top key", "bands: {low: 1}\ncolour: red\n", []string{`r.yaml:2: unknown key "colour"`}},
		{"unknown nested key", "rules:\n  - name: x\n    match:\n      rule: y\n    raise: 1\n", []string{`r.yaml:4: unknown key "rule"`}},
		{"typo action", "rules:\n  - name: x\n    set_priorty: Error\n", []string{`r.yaml:3: unknown key "set_priorty"`}},
		{"bad priority", "sinks:\n  slack: {min_priority: loud}\n", []string{`r.yaml:2: unknown priority "loud"`}},
		{"priority not scalar", "rules:\n  - name: x\n    set_priority: [Error]\n", []string{"r.yaml:3: want a priority name"}},
		{"bands order", "bands:\n  low: 1\n  medium: 3\n  high: 2\n", []string{"r.yaml:4: bands.high: must be greater than medium"}},
		{"band zero", "bands:\n  low: 0\n", []string{"r.yaml:2: bands.low: must be a positive number"}},
		{"negative raise band", "falco_raise:\n  high: -1\n", []string{"r.yaml:2: falco_raise.high: -1 out of range 0..7"}},
		{"unknown sink in rule", "rules:\n  - name: x\n    sinks: [pagerduty]\n", []string{`r.yaml:3: rules[0].sinks[0]: unknown sink "pagerduty"`}},
		{"unknown default sink", "default_sinks: [stdout, nope]\n", []string{`r.yaml:1: default_sinks[1]: unknown sink "nope"`}},
		{"suppress without reason", "rules:\n  - name: x\n    suppress:\n      until: 2030-01-01T00:00:00Z\n", []string{"r.yaml:3: rules[0].suppress.reason: empty"}},
		{"suppress without until", "rules:\n  - name: x\n    suppress: {reason: because}\n", []string{"r.yaml:3: rules[0].suppress.until: missing"}},
		{"suppress with actions", "rules:\n  - name: x\n    raise: 1\n    suppress: {reason: r, until: 2030-01-01T00:00:00Z}\n", []string{"r.yaml:4: rules[0].suppress: cannot be combined"}},
		{"until not a time", "rules:\n  - name: x\n    suppress: {reason: r, until: tomorrow}\n", []string{`r.yaml:3: want an RFC 3339 time like 2027-01-31T00:00:00Z, got "tomorrow"`}},
		{"missing name", "rules:\n  - raise: 1\n", []string{"r.yaml:2: rules[0].name: empty"}},
		{"duplicate name", "rules:\n  - name: a\n    raise: 1\n  - name: a\n    raise: 2\n", []string{`r.yaml:4: rules[1].name: duplicate rule name "a"`}},
		{"bad band", "rules:\n  - name: a\n    match: {bands: [huge]}\n    raise: 1\n", []string{`r.yaml:3: rules[0].match.bands[0]: unknown band "huge"`}},
		{"bad kind", "rules:\n  - name: a\n    match:\n      kinds: [falco, alert]\n    raise: 1\n", []string{`r.yaml:4: rules[0].match.kinds[1]: unknown kind "alert"`}},
		{"continue alone", "rules:\n  - name: a\n    continue: true\n", []string{"r.yaml:3: rules[0].continue: continue without an action"}},
		{"raise range", "rules:\n  - name: a\n    raise: 9\n", []string{"r.yaml:3: rules[0].raise: 9 out of range -7..7"}},
		{"dedup negative", "dedup:\n  window: -1s\n", []string{"r.yaml:2: dedup.window: must not be negative"}},
		{"dedup bad duration", "dedup:\n  window: soon\n", []string{"r.yaml:2: cannot unmarshal"}},
		{"dedup no keys", "dedup: {window: 1m, max_keys: 0}\n", []string{"r.yaml:1: dedup.max_keys: must be positive"}},
		{"pattern not string", "rules:\n  - name: a\n    match:\n      images: [{a: b}]\n    raise: 1\n", []string{"r.yaml:4: want a string"}},
		{"two documents", "bands: {low: 1}\n---\nbands: {low: 2}\n", []string{"r.yaml:", "more than one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"r.yaml:1: cannot unmarshal"}},
		{"several errors", "rules:\n  - name: a\n    sinks: [x]\n  - name: b\n    match: {bands: [y]}\n    raise: 1\n",
			[]string{`r.yaml:3: rules[0].sinks[0]: unknown sink "x"`, `r.yaml:5: rules[1].match.bands[0]: unknown band "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "r.yaml")
			if err == nil {
				t.Fatalf("Parse(%q) error = nil, want one containing %q", tt.in, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Errorf("Load(missing) error = nil, want an error")
	}
	p := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(p, []byte("rules:\n  - name: x\n    sinks: [nope]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":3: ") {
		t.Errorf("Load(bad file) error = %v, want prefix %q", err, p+":3: ")
	}
}

func TestLevelMarshal(t *testing.T) {
	v, err := Level(scorer.PriorityWarning).MarshalYAML()
	if err != nil || v != "Warning" {
		t.Errorf("Level(Warning).MarshalYAML() = %v, %v; want Warning, nil", v, err)
	}
}
