package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `falco-scorer demo` as `make demo` does and checks the story
// it must tell: baselines graduate, the attack on checkout-api is flagged
// with an explanation, Falco alerts are forwarded, and it ends with a summary.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("demo replays 43k events; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := newRootCmd(&out, &out)
	dataDir := t.TempDir()
	cmd.SetArgs([]string{"demo", "--data-dir", dataDir})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"graduated: learning → monitoring",
		"⚑ Falco alert \"Read sensitive file untrusted\"",
		"least likely steps",
		"summary after",
		"events posted and acknowledged: 42966",
		"anomaly alerts on normal processes (false alarms):",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// An attack flagged with its explanation in readable symbols.
	attack := regexp.MustCompile(`✱ behaviour anomaly — attack \S+ \(.*\), priority \w+, in \S+ .* process \S+ pid \d+\n\s+system-call sequence .*unusual for this image\n\s+score [\d.]+ bits vs threshold [\d.]+ .*\n\s+least likely steps.*\n\s+after .*→ (execve|open|connect|clone|chmod|unshare|mkdir|setuid)`)
	if !attack.MatchString(s) {
		t.Errorf("demo output has no anomaly alert on an attack process with its explanation:\n%s", s)
	}
	m := regexp.MustCompile(`attack runs flagged: (\d+) of (\d+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("demo output has no attack-run count:\n%s", s)
	}
	if got, _ := strconv.Atoi(m[1]); got < 40 {
		t.Errorf("demo flagged %s of %s attack runs, want at least 40", m[1], m[2])
	}
	// With the default rules, anomalies on mature baselines reach Slack
	// (its default minimum is Warning): the receiver got some.
	sl := regexp.MustCompile(`Slack (\d+) messages \(Block Kit, (\d+) of them on behaviour anomalies\)`).FindStringSubmatch(s)
	if sl == nil {
		t.Fatalf("demo output has no Slack delivery count:\n%s", s)
	}
	if got, _ := strconv.Atoi(sl[2]); got == 0 {
		t.Errorf("demo delivered %s Slack messages, %s of them on behaviour anomalies, want some anomalies in Slack", sl[1], sl[2])
	}

	// The baselines the demo left behind read as what they are: learning or
	// monitoring, with events, thresholds and graduation time.
	list, err := runBaselines(t, dataDir, "list")
	if err != nil {
		t.Fatalf("baselines list after the demo: %v\n%s", err, list)
	}
	t.Logf("baselines list after the demo:\n%s", list)
	if !strings.Contains(list, "STATE") || !strings.Contains(list, "PROGRESS / THRESHOLD") {
		t.Errorf("baselines list has no state or progress column:\n%s", list)
	}
	row := regexp.MustCompile(`(?m)^\S*nginx@sha256:\S+\s+monitoring\s+\d{4,}\s+threshold 15\.00.*\s+\d{4}-\d\d-\d\dT\S+\s+\d{4}-\d\d-\d\dT\S+\s*$`)
	if !row.MatchString(list) {
		t.Errorf("baselines list has no monitoring nginx row with events, threshold, graduation and last seen:\n%s", list)
	}
	show, err := runBaselines(t, dataDir, "show", regexp.MustCompile(`\S*nginx@sha256:\S+`).FindString(list))
	if err != nil {
		t.Fatalf("baselines show: %v", err)
	}
	for _, want := range []string{`"state": "monitoring"`, `"threshold": 15`, `"graduated": "`} {
		if !strings.Contains(show, want) {
			t.Errorf("baselines show lacks %s:\n%s", want, show)
		}
	}
}
