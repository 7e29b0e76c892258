package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func sameRuleAlert(i int) []byte {
	return fmt.Appendf(nil, `{"hostname":"node-1","output":"alert %d","priority":"Critical","rule":"Same rule","source":"syscall",`+
		`"tags":["container","T1059"],"time":%q,"output_fields":{"container.id":"c000001","container.image.repository":"nginx",`+
		`"container.image.tag":"1.27","evt.type":"execve","k8s.ns.name":"shop","k8s.pod.name":"web-1","proc.name":"bash","proc.pid":%d}}`,
		i, evTime.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), 1000+i)
}

// TestShutdownDoesNotWaitForHeldSlackFollowUps: a Slack follow-up held for
// its incident's next digest stays in the outbox at shutdown (sent after the
// next start) without holding the shutdown up to its deadline.
func TestShutdownDoesNotWaitForHeldSlackFollowUps(t *testing.T) {
	slack := newReceiver(t, nil)
	cfg := testConfig(t.TempDir())
	cfg.Sinks.Slack.Enabled = true
	cfg.Sinks.Slack.WebhookURL = secretURL(slack.URL + "/services/T000/B000/slacksecret0123")
	cfg.Sinks.Slack.MinInterval = 5 * time.Millisecond
	// A shutdown that waits for the held follow-up ends at this deadline; one
	// that does not wait ends in well under a second. The bound below sits
	// between the two with a wide margin either side, so a busy machine
	// cannot fail it.
	cfg.ShutdownTimeout = 2 * time.Minute
	r := startService(t, cfg, "info")
	postOK(t, r.url, sameRuleAlert(1), false)
	deadline := time.Now().Add(10 * time.Second)
	for len(slack.Bodies()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	postOK(t, r.url, sameRuleAlert(2), false)
	for strings.Count(r.out.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the dispatcher has read and held it
	start := time.Now()
	r.stop(t)
	took := time.Since(start)
	t.Logf("slack messages: %d; stop took %s", len(slack.Bodies()), took)
	if took >= cfg.ShutdownTimeout/2 {
		t.Errorf("shutdown took %s waiting for a held Slack follow-up; outbox warning logged: %v", took,
			strings.Contains(r.logs.String(), "outbox not empty at shutdown"))
	}
}
