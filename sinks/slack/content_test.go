package slack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

// TestDigestsMergeOnlySameRuleImageContainer: alerts are merged into one
// message only when they share kind, rule, image and container, and the
// message lists the alerts it merged.
func TestDigestsMergeOnlySameRuleImageContainer(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	a1 := sinkstest.FalcoAlert(1, "nginx:1.27", rule)
	a2 := sinkstest.FalcoAlert(2, "nginx:1.27", rule)
	a2.Subject.PID = 5151
	otherContainer := sinkstest.FalcoAlert(3, "nginx:1.27", rule)
	otherContainer.Subject.ContainerID, otherContainer.Subject.Container = "9f8e7d6c5b4a", "web-2"
	otherRule := sinkstest.FalcoAlert(4, "nginx:1.27", "Read sensitive file untrusted")
	anomaly := sinkstest.AnomalyAlert(5, "nginx:1.27")
	anomaly2 := sinkstest.AnomalyAlert(6, "nginx:1.27")
	anomaly2.Subject.ContainerID = "9f8e7d6c5b4a"
	if r := s.Send(context.Background(), items(t, a1, a2, otherContainer, otherRule, anomaly, anomaly2)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 5 {
		t.Fatalf("messages = %d, want 5 (the two alerts of one rule, image and container merged; every other alert alone)", len(reqs))
	}
	first := string(reqs[0].Body)
	if !strings.Contains(first, "and 1 more like this") || !strings.Contains(first, a2.ID) || !strings.Contains(first, "pid 5151") {
		t.Errorf("merged message does not list the alert it merged (%s, pid 5151):\n%s", a2.ID, first)
	}
	for _, r := range reqs[1:] {
		if strings.Contains(string(r.Body), "more like this") {
			t.Errorf("a message merged alerts of different containers, rules or kinds:\n%s", r.Body)
		}
	}
}

// TestAnomalyMessageShowsExplanation: an anomaly's message shows its least
// likely transitions in readable symbols, the process and its parent, the
// container and the baseline's state, and not the last observation's Falco
// output (which names a system call, not the anomaly).
func TestAnomalyMessageShowsExplanation(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	a := sinkstest.AnomalyAlert(7, "nginx:1.27")
	a.Subject.Parent = "nginx"
	a.Event.Output = "12:00:07: Debug falco-scorer observation evt_type=procexit proc=bash"
	a.Explain.Transitions[0].History = []string{"accept4 inet", "execve /bin/sh"}
	a.Explain.Transitions[0].Symbol = "connect external:4444"
	a.Baseline.Graduated = a.Baseline.Since.Add(48 * 3600e9)
	if r := s.Send(context.Background(), items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("messages = %d, want 1", len(reqs))
	}
	body := string(reqs[0].Body)
	for _, want := range []string{
		"execve /bin/sh → connect external:4444", // the explanation, readable
		"bash (pid 4249) ← nginx",                // process and parent
		"web (4e5c1a2b3c4d)",                     // container
		"monitoring since 2026-11-21",            // baseline state
		"120000 events",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("anomaly message lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "evt_type=procexit") || strings.Contains(body, "Falco output") {
		t.Errorf("anomaly message shows the last observation's output as the Falco output:\n%s", body)
	}
}

// TestFalcoMessageNamesAnomaly: a Falco alert raised by its container's
// anomaly says which one.
func TestFalcoMessageNamesAnomaly(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	a := sinkstest.FalcoAlert(8, "nginx:1.27", rule)
	a.Anomaly = &scorer.AnomalyRef{ID: "b9271bcd2b5b9099512509acbf142be2", Kind: scorer.KindEnd, Time: a.Time,
		Score: 4.5, Threshold: 2.25, Ratio: 2, Process: "curl", PID: 4300}
	if r := s.Send(context.Background(), items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	body := string(f.Requests()[0].Body)
	if !strings.Contains(body, "b9271bcd2b5b9099512509acbf142be2") || !strings.Contains(body, "curl (pid 4300)") {
		t.Errorf("Falco alert message does not name the anomaly it follows:\n%s", body)
	}
}
