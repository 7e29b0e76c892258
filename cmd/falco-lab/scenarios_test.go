package main

import (
	"slices"
	"strings"
	"testing"
)

func TestScenariosCoverTheBrief(t *testing.T) {
	runs := map[string]int{}
	entries := map[string]bool{"api-debug": true, "web": true, "redis": true, "cron": true, "api": true}
	for _, a := range attacks {
		runs[a.scenario]++
		if !entries[a.entry] {
			t.Errorf("attack %s: entry %q is not a container base or api-debug", a.scenario, a.entry)
		}
		if a.note == "" || a.script == "" {
			t.Errorf("attack %s: note and script must be set", a.scenario)
		}
	}
	if len(runs) < 8 {
		t.Errorf("%d scenarios, want at least 8", len(runs))
	}
	for s, n := range runs {
		if n < 3 {
			t.Errorf("scenario %s: %d runs, want at least 3", s, n)
		}
	}
}

func TestExpandLeavesNoLabVariables(t *testing.T) {
	r := &recorder{cfg: recordConfig{Root: "/var/lib/falco-lab"}}
	for _, a := range attacks {
		if s := r.expand(a.script); strings.Contains(s, "$R/") || strings.Contains(s, "$LAB") {
			t.Errorf("expand(%q) = %q: a lab variable is left", a.script, s)
		}
	}
}

func TestStraceArgsTraceTheRulesCalls(t *testing.T) {
	args := straceArgs("/x", "/bin/true")
	i := slices.IndexFunc(args, func(s string) bool { return strings.HasPrefix(s, "trace=") })
	if i < 0 {
		t.Fatalf("straceArgs = %v: no trace=", args)
	}
	calls := strings.Split(strings.TrimPrefix(args[i], "trace="), ",")
	for _, want := range []string{"execve", "clone3", "openat2", "accept4", "connect", "setresuid", "umount2", "close"} {
		if !slices.Contains(calls, want) {
			t.Errorf("traced calls %v lack %s", calls, want)
		}
	}
	for _, f := range []string{"-f", "-ttt", "-yy"} {
		if !slices.Contains(args, f) {
			t.Errorf("straceArgs lacks %s", f)
		}
	}
}
