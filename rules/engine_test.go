package rules

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-scorer/falco-scorer/scorer"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type alertOpt func(*scorer.Alert)

func newAlert(kind string, prio scorer.Priority, ratio float64, opts ...alertOpt) *scorer.Alert {
	a := &scorer.Alert{
		Kind:    kind,
		Event:   scorer.Event{Priority: prio, Rule: "Terminal shell in container", Tags: []string{"container", "shell", "mitre_execution"}},
		Subject: scorer.Subject{Image: "docker.io/library/nginx:1.27", Namespace: "shop"},
		Score:   scorer.Score{Ratio: ratio},
	}
	if kind != scorer.KindFalco {
		a.Event.Rule = "falco-scorer process observation"
		a.Event.Tags = []string{TagScorer, TagObservation}
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func withImage(s string) alertOpt { return func(a *scorer.Alert) { a.Subject.Image = s } }
func withNS(s string) alertOpt    { return func(a *scorer.Alert) { a.Subject.Namespace = s } }
func withRule(s string) alertOpt  { return func(a *scorer.Alert) { a.Event.Rule = s } }
func withTags(t ...string) alertOpt {
	return func(a *scorer.Alert) { a.Event.Tags = t }
}

func mustParse(t *testing.T, in string) *Engine {
	t.Helper()
	e, err := Parse([]byte(in), "test.yaml")
	if err != nil {
		t.Fatalf("Parse error = %v, want nil; input:\n%s", err, in)
	}
	return e
}

func TestBand(t *testing.T) {
	e := Default()
	tests := []struct {
		ratio float64
		want  string
	}{
		{0, BandNone}, {0.99, BandNone}, {1.0, BandLow}, {1.49, BandLow}, {1.5, BandMedium},
		{2.49, BandMedium}, {2.5, BandHigh}, {3.99, BandHigh}, {4.0, BandCritical}, {1e9, BandCritical},
		{math.Inf(1), BandCritical}, {math.Inf(-1), BandNone}, {-3, BandNone}, {math.NaN(), BandNone},
	}
	for _, tt := range tests {
		if got := e.Band(tt.ratio); got != tt.want {
			t.Errorf("Band(%v) = %q, want %q", tt.ratio, got, tt.want)
		}
	}
}

func TestDecideDefaults(t *testing.T) {
	all := []string{"kafka", "slack", "stdout", "webhook"}
	tests := []struct {
		name      string
		alert     *scorer.Alert
		wantPrio  scorer.Priority
		wantBand  string
		wantSinks []string
	}{
		{"falco alert, no anomaly keeps its priority", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0),
			scorer.PriorityWarning, BandNone, all},
		{"falco alert in band low is not raised", newAlert(scorer.KindFalco, scorer.PriorityNotice, 1.2),
			scorer.PriorityNotice, BandLow, []string{"kafka", "stdout", "webhook"}},
		{"falco alert in band medium raised one level", newAlert(scorer.KindFalco, scorer.PriorityNotice, 2.0),
			scorer.PriorityWarning, BandMedium, all},
		{"falco alert in band high raised two levels", newAlert(scorer.KindFalco, scorer.PriorityNotice, 3.0),
			scorer.PriorityError, BandHigh, all},
		{"falco alert in band critical raised three levels", newAlert(scorer.KindFalco, scorer.PriorityNotice, 9),
			scorer.PriorityCritical, BandCritical, all},
		{"raise clamps at Emergency", newAlert(scorer.KindFalco, scorer.PriorityAlert, 9),
			scorer.PriorityEmergency, BandCritical, all},
		{"debug falco alert goes to stdout only", newAlert(scorer.KindFalco, scorer.PriorityDebug, 0),
			scorer.PriorityDebug, BandNone, []string{"stdout"}},
		{"invalid falco priority treated as Informational", newAlert(scorer.KindFalco, scorer.Priority(42), 0),
			scorer.PriorityInformational, BandNone, []string{"stdout"}},
		{"anomaly band low is Notice", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1),
			scorer.PriorityNotice, BandLow, []string{"kafka", "stdout", "webhook"}},
		{"anomaly band medium is Warning", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 2),
			scorer.PriorityWarning, BandMedium, all},
		{"sequence end band high is Error", newAlert(scorer.KindEnd, scorer.PriorityDebug, 3),
			scorer.PriorityError, BandHigh, all},
		{"anomaly band critical is Critical", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 4),
			scorer.PriorityCritical, BandCritical, all},
		{"anomaly with NaN ratio is band none", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, math.NaN()),
			scorer.PriorityInformational, BandNone, []string{"stdout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Default().Decide(tt.alert, t0)
			if d.Priority != tt.wantPrio || d.Band != tt.wantBand || d.Suppressed {
				t.Errorf("Decide = {%s %s suppressed=%v}, want {%s %s suppressed=false} (reason %q)",
					d.Priority, d.Band, d.Suppressed, tt.wantPrio, tt.wantBand, d.Reason)
			}
			if diff := cmp.Diff(tt.wantSinks, d.Sinks); diff != "" {
				t.Errorf("Decide sinks (-want +got):\n%s", diff)
			}
			if d.Reason == "" {
				t.Errorf("Decide reason is empty, want an explanation")
			}
		})
	}
}

const ruleSet = `
rules:
  - name: suppress old
    match: {namespaces: [legacy]}
    suppress: {until: 2026-01-01T00:00:00Z, reason: "expired already"}
  - name: suppress ci
    match: {namespaces: ["ci-*"], kinds: [anomaly, sequence_end]}
    suppress: {until: 2027-01-01T00:00:00Z, reason: "ci noise"}
  - name: prod shells
    match:
      rules: ["Terminal shell*"]
      namespaces: [prod]
    set_priority: Critical
    sinks: [slack, kafka]
  - name: exempt vendor images
    match: {images: ["registry.vendor.io/*"]}
  - name: mitre raise
    match: {tags: ["mitre_*"], bands: [high, critical], kinds: [falco]}
    raise: 1
    continue: true
  - name: severe to slack only
    match: {min_priority: Error}
    sinks: [slack]
  - name: demote chatty rule
    match: {rules: [Chatty rule]}
    set_priority: Debug
  - name: legacy fallback
    match: {namespaces: [legacy]}
    set_priority: Notice
    sinks: [slack]
`

func TestDecideRules(t *testing.T) {
	tests := []struct {
		name       string
		alert      *scorer.Alert
		wantPrio   scorer.Priority
		wantSinks  []string
		suppressed bool
		reasonHas  string
	}{
		{"prod shell set to critical and routed", newAlert(scorer.KindFalco, scorer.PriorityNotice, 0, withNS("prod")),
			scorer.PriorityCritical, []string{"kafka", "slack"}, false, `rule "prod shells"`},
		{"ci anomaly suppressed", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 5, withNS("ci-42")),
			scorer.PriorityCritical, nil, true, "ci noise"},
		{"ci falco alert not suppressed (kinds)", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0, withNS("ci-42")),
			scorer.PriorityWarning, []string{"kafka", "slack", "stdout", "webhook"}, false, ""},
		{"vendor image exempt from later rules", newAlert(scorer.KindFalco, scorer.PriorityError, 3, withImage("registry.vendor.io/a/b:1")),
			scorer.PriorityAlert, []string{"kafka", "slack", "stdout", "webhook"}, false, `rule "exempt vendor images"`},
		{"mitre raise continues into severe rule", newAlert(scorer.KindFalco, scorer.PriorityNotice, 3),
			scorer.PriorityCritical, []string{"slack"}, false, `rule "mitre raise"; rule "severe to slack only"`},
		{"tag glob needs a matching tag", newAlert(scorer.KindFalco, scorer.PriorityNotice, 3, withTags("shell")),
			scorer.PriorityError, []string{"slack"}, false, `rule "severe to slack only"`},
		{"min_priority judged before rules", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0),
			scorer.PriorityWarning, []string{"kafka", "slack", "stdout", "webhook"}, false, ""},
		{"demoted below every sink but stdout", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0, withRule("Chatty rule")),
			scorer.PriorityDebug, []string{"stdout"}, false, "-> Debug"},
		{"expired suppression ignored, next rule applies", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0, withNS("legacy")),
			scorer.PriorityNotice, nil, false, "below every sink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustParse(t, ruleSet)
			d := e.Decide(tt.alert, t0)
			if d.Priority != tt.wantPrio || d.Suppressed != tt.suppressed {
				t.Errorf("Decide = {%s suppressed=%v}, want {%s suppressed=%v} (reason %q)",
					d.Priority, d.Suppressed, tt.wantPrio, tt.suppressed, d.Reason)
			}
			if diff := cmp.Diff(tt.wantSinks, d.Sinks); diff != "" {
				t.Errorf("Decide sinks (-want +got):\n%s", diff)
			}
			if !strings.Contains(d.Reason, tt.reasonHas) {
				t.Errorf("Decide reason = %q, want it to contain %q", d.Reason, tt.reasonHas)
			}
		})
	}
}

func TestDecideCounters(t *testing.T) {
	e := mustParse(t, ruleSet)
	e.Decide(newAlert(scorer.KindFalco, scorer.PriorityWarning, 0, withNS("legacy")), t0)   // expired + unrouted
	e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 5, withNS("ci-1")), t0)     // suppressed
	e.Decide(newAlert(scorer.KindFalco, scorer.PriorityWarning, 0), t0)                     // routed
	e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 5, withNS("x")), t0)        // routed
	e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 5, withNS("x")), t0.Add(1)) // duplicate
	want := Stats{Routed: 2, Unrouted: 1, Suppressed: 1, Duplicates: 1, ExpiredSuppressions: 1, DedupKeys: 1}
	if diff := cmp.Diff(want, e.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if got := e.Expired(t0); !cmp.Equal(got, []string{"suppress old"}) {
		t.Errorf("Expired(t0) = %v, want [suppress old]", got)
	}
	if got := e.Expired(t0.AddDate(1, 0, 0)); len(got) != 2 {
		t.Errorf("Expired(a year later) = %v, want both suppressions", got)
	}
	if got := e.Sinks(); !cmp.Equal(got, []string{"kafka", "slack", "stdout", "webhook"}) {
		t.Errorf("Sinks() = %v, want the four built-in sinks", got)
	}
}

func TestDedup(t *testing.T) {
	e := Default() // window 1m on anomaly and sequence_end
	an := func(img string) *scorer.Alert {
		return newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3, withImage(img))
	}
	steps := []struct {
		name    string
		alert   *scorer.Alert
		at      time.Duration
		wantDup bool
	}{
		{"first passes", an("a"), 0, false},
		{"repeat within window suppressed", an("a"), 30 * time.Second, true},
		{"other image passes", an("b"), 31 * time.Second, false},
		{"same image, other kind passes", newAlert(scorer.KindEnd, scorer.PriorityDebug, 3, withImage("a")), 32 * time.Second, false},
		{"same image, other rule passes", newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3, withImage("a"), withRule("falco-scorer network observation")), 33 * time.Second, false},
		{"still within the fixed window", an("a"), 59 * time.Second, true},
		{"window over: passes again", an("a"), 60 * time.Second, false},
		{"new window started", an("a"), 61 * time.Second, true},
		{"clock went back: new window", an("a"), 10 * time.Second, false},
		{"falco alerts not deduplicated by default", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0), 0, false},
		{"falco alerts not deduplicated by default, again", newAlert(scorer.KindFalco, scorer.PriorityWarning, 0), time.Second, false},
	}
	for _, s := range steps {
		d := e.Decide(s.alert, t0.Add(s.at))
		if d.Suppressed != s.wantDup {
			t.Errorf("%s: Decide suppressed = %v, want %v (reason %q)", s.name, d.Suppressed, s.wantDup, d.Reason)
		}
		if s.wantDup && (len(d.Sinks) != 0 || !strings.Contains(d.Reason, "duplicate")) {
			t.Errorf("%s: duplicate decision = %+v, want no sinks and a duplicate reason", s.name, d)
		}
	}
}

func TestDedupDisabledAndUnroutedNotRecorded(t *testing.T) {
	e := mustParse(t, "dedup: {window: 0s}\n")
	for i := range 3 {
		if d := e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3), t0); d.Suppressed {
			t.Fatalf("Decide #%d with dedup disabled suppressed = true, want false", i)
		}
	}
	// An alert that reaches no sink must not open a dedup window.
	e = mustParse(t, "sinks: {stdout: {min_priority: Error}, kafka: {min_priority: Error}, slack: {min_priority: Error}, webhook: {min_priority: Error}}\n")
	if d := e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1), t0); len(d.Sinks) != 0 {
		t.Fatalf("Decide(band low) sinks = %v, want none", d.Sinks)
	}
	if d := e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3), t0.Add(time.Second)); d.Suppressed || len(d.Sinks) == 0 {
		t.Errorf("Decide(band high after an unrouted one) = %+v, want routed", d)
	}
}

func TestDedupBoundedMemory(t *testing.T) {
	for _, maxKeys := range []int{1, 5, 16, 100} {
		e := mustParse(t, fmt.Sprintf("dedup: {window: 1h, max_keys: %d}\n", maxKeys))
		const n = 1000
		for i := range n {
			e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3, withImage(fmt.Sprintf("img-%d", i))), t0)
		}
		s := e.Stats()
		if s.DedupKeys > maxKeys || s.DedupKeys == 0 {
			t.Errorf("max_keys %d: DedupKeys = %d, want 1..%d", maxKeys, s.DedupKeys, maxKeys)
		}
		if got, want := s.DedupEvictions, uint64(n-s.DedupKeys); got != want {
			t.Errorf("max_keys %d: DedupEvictions = %d, want %d", maxKeys, got, want)
		}
	}
}

func TestDecideConcurrent(t *testing.T) {
	e := mustParse(t, ruleSet)
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				a := newAlert(scorer.KindAnomaly, scorer.PriorityDebug, float64(i%6), withImage(fmt.Sprintf("img-%d", (w*per+i)%97)))
				e.Decide(a, t0.Add(time.Duration(i)*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	s := e.Stats()
	if total := s.Routed + s.Unrouted + s.Suppressed + s.Duplicates; total != workers*per {
		t.Errorf("decisions counted = %d, want %d (%+v)", total, workers*per, s)
	}
	if s.DedupKeys > 97 {
		t.Errorf("DedupKeys = %d, want at most 97 distinct images", s.DedupKeys)
	}
}

func TestRegister(t *testing.T) {
	e := Default()
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatalf("Register error = %v", err)
	}
	if err := e.Register(reg); err == nil {
		t.Errorf("second Register error = nil, want a duplicate registration error")
	}
	e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3), t0)
	e.Decide(newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 3), t0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather error = %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				got[key] = g.GetValue()
			}
		}
	}
	want := map[string]float64{
		"falco_scorer_rules_decisions_total{outcome=routed}":     1,
		"falco_scorer_rules_decisions_total{outcome=duplicate}":  1,
		"falco_scorer_rules_decisions_total{outcome=suppressed}": 0,
		"falco_scorer_rules_decisions_total{outcome=unrouted}":   0,
		"falco_scorer_rules_expired_suppressions_total":          0,
		"falco_scorer_rules_dedup_evictions_total":               0,
		"falco_scorer_rules_dedup_keys":                          1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gathered metrics (-want +got):\n%s", diff)
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"docker.io/*", "docker.io/library/nginx:1.27", true},
		{"docker.io/*", "quay.io/x", false},
		{"*nginx*", "docker.io/library/nginx:1.27", true},
		{"Terminal shell*", "Terminal shell in container", true},
		{"T1059*", "T1059.004", true},
		{"ci-?", "ci-1", true},
		{"ci-?", "ci-12", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"**a", "bbba", true},
		{"é?", "éà", true},
		{"a*a*a*a*a*b", strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	e, err := Parse([]byte(ruleSet), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	alerts := []*scorer.Alert{
		newAlert(scorer.KindFalco, scorer.PriorityNotice, 3),
		newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 2, withImage("a")),
		newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 5, withNS("ci-1")),
		newAlert(scorer.KindFalco, scorer.PriorityWarning, 0, withNS("prod")),
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Decide(alerts[i%len(alerts)], t0.Add(time.Duration(i)))
			i++
		}
	})
}

func TestDedupKeepsOtherProcessesAnomalies(t *testing.T) {
	e := Default()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	mk := func(pid int64) *scorer.Alert {
		return &scorer.Alert{Kind: scorer.KindAnomaly, Event: scorer.Event{Rule: "falco-scorer process observation"},
			Subject: scorer.Subject{Image: "app:1", ContainerID: "c1", PID: pid},
			Score:   scorer.Score{Value: 3, Threshold: 1, Ratio: 3, Verdict: scorer.VerdictAnomalous}}
	}
	if d := e.Decide(mk(1), now); d.Suppressed {
		t.Fatalf("first anomaly suppressed: %s", d.Reason)
	}
	if d := e.Decide(mk(2), now.Add(time.Second)); d.Suppressed {
		t.Errorf("anomaly of another process suppressed as duplicate: %s", d.Reason)
	}
	if d := e.Decide(mk(1), now.Add(2*time.Second)); !d.Suppressed {
		t.Errorf("repeat anomaly of the same process within the window not suppressed")
	}
}

// TestImagePatternsMatchDigestKeys: the image key is repo@sha256:… whenever
// Falco gives a digest; patterns written for repository:tag or for the
// repository still apply.
func TestImagePatternsMatchDigestKeys(t *testing.T) {
	digestKeyed := func(a *scorer.Alert) {
		a.Subject.Image = "ghcr.io/acme/app@sha256:feed"
		a.Event.Fields = scorer.FieldsOf(map[string]string{"container.image.repository": "ghcr.io/acme/app", "container.image.tag": "1.2"})
	}
	for _, tc := range []struct {
		pattern string
		opt     alertOpt
		want    bool
	}{
		{"ghcr.io/acme/app:*", digestKeyed, true},
		{"ghcr.io/acme/app:1.2", digestKeyed, true},
		{"ghcr.io/acme/app", digestKeyed, true},
		{"ghcr.io/acme/app@sha256:feed", digestKeyed, true},
		{"ghcr.io/acme/app:1.3", digestKeyed, false},
		{"ghcr.io/acme/other*", digestKeyed, false},
		{"reg:5000/app", withImage("reg:5000/app:1"), true},
		{"reg:5000/*", withImage("reg:5000/app:1"), true},
		{"reg", withImage("reg:5000/app:1"), false},
	} {
		e := mustParse(t, fmt.Sprintf("rules:\n  - name: m\n    match: {images: [%q]}\n    set_priority: Critical\n", tc.pattern))
		a := newAlert(scorer.KindFalco, scorer.PriorityNotice, 0, tc.opt)
		d := e.Decide(a, time.Now())
		if got := d.Priority == scorer.PriorityCritical; got != tc.want {
			t.Errorf("pattern %q on image %s: matched %v, want %v", tc.pattern, a.Subject.Image, got, tc.want)
		}
	}
}

func withBaseline(state string, events uint64, graduated time.Time) alertOpt {
	return func(a *scorer.Alert) {
		a.Baseline = scorer.Maturity{State: state, Events: events, Graduated: graduated}
	}
}

// TestAnomalyPriorityByMaturity: an anomaly's priority depends on how far
// above its threshold it is and on how mature its baseline is, so that a
// confident anomaly on a mature baseline reaches Slack's default minimum
// (Warning) and a marginal one on a young baseline does not.
func TestAnomalyPriorityByMaturity(t *testing.T) {
	old := t0.Add(-2 * time.Hour)
	recent := t0.Add(-time.Minute)
	tests := []struct {
		name      string
		cfg       string
		alert     *scorer.Alert
		wantPrio  scorer.Priority
		wantSlack bool
	}{
		{"marginal on a young baseline", "",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 1600, recent)),
			scorer.PriorityNotice, false},
		{"marginal on a mature baseline", "",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 6000, old)),
			scorer.PriorityWarning, true},
		{"medium on a mature baseline", "",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 2, withBaseline(scorer.StateMonitoring, 6000, old)),
			scorer.PriorityError, true},
		{"high on a mature baseline", "",
			newAlert(scorer.KindEnd, scorer.PriorityDebug, 3, withBaseline(scorer.StateMonitoring, 6000, old)),
			scorer.PriorityCritical, true},
		{"high on a young baseline", "",
			newAlert(scorer.KindEnd, scorer.PriorityDebug, 3, withBaseline(scorer.StateMonitoring, 10, old)),
			scorer.PriorityError, true},
		{"no baseline is young", "",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1),
			scorer.PriorityNotice, false},
		{"learning baseline is young", "",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateLearning, 1e6, time.Time{})),
			scorer.PriorityNotice, false},
		{"min_monitoring: graduated a minute ago is young", "maturity: {min_monitoring: 1h}\n",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 6000, recent)),
			scorer.PriorityNotice, false},
		{"min_monitoring: graduated two hours ago is mature", "maturity: {min_monitoring: 1h}\n",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 6000, old)),
			scorer.PriorityWarning, true},
		{"min_monitoring: unknown graduation is young", "maturity: {min_monitoring: 1h}\n",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 6000, time.Time{})),
			scorer.PriorityNotice, false},
		{"configured tables", "maturity: {min_events: 100}\nanomaly_priority: {low: Error}\nyoung_anomaly_priority: {low: Debug}\n",
			newAlert(scorer.KindAnomaly, scorer.PriorityDebug, 1.1, withBaseline(scorer.StateMonitoring, 100, old)),
			scorer.PriorityError, true},
		{"falco alerts ignore maturity", "",
			newAlert(scorer.KindFalco, scorer.PriorityNotice, 1.1, withBaseline(scorer.StateMonitoring, 6000, old)),
			scorer.PriorityNotice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustParse(t, tt.cfg)
			d := e.Decide(tt.alert, t0)
			if d.Priority != tt.wantPrio {
				t.Errorf("Decide(ratio %v, baseline %+v).Priority = %s, want %s (reason %q)",
					tt.alert.Score.Ratio, tt.alert.Baseline, d.Priority, tt.wantPrio, d.Reason)
			}
			slack := false
			for _, s := range d.Sinks {
				slack = slack || s == "slack"
			}
			if slack != tt.wantSlack {
				t.Errorf("Decide(...).Sinks = %v, slack included %v, want %v", d.Sinks, slack, tt.wantSlack)
			}
		})
	}
}
