package slack_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
)

// The tests here run in a synctest bubble against the in-memory Slack:
// digest intervals, pacing and the dispatcher's polls run on the bubble's
// fake clock, so "three digest intervals later" means exactly that however
// busy the machine is, and synctest.Wait lets everything that can run
// finish before the test looks.

// TestHeldFollowUpsGoOutInOneDigest: follow-ups held for an incident that
// are more than one outbox batch all go out in the digest due at HeldUntil
// (the dispatcher reads them back in one larger batch), instead of one
// batch per digest_interval with the rest held again.
func TestHeldFollowUpsGoOutInOneDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := webhookConfig(memSlackURL)
		cfg.DigestInterval = 200 * time.Millisecond
		dc := dispatcherConfig()
		dc.BatchSize = 5
		f, ob, d, stop := startMemRig(t, cfg, dc)
		defer stop()
		ob.PutAlert("slack", sinkstest.FalcoAlert(0, "nginx:1.27", rule))
		d.Wake()
		synctest.Wait()
		if got := ob.Acked("slack"); got != 1 {
			t.Fatalf("acked %d after the first alert, want 1", got)
		}
		const n = 40
		for i := 1; i <= n; i++ {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, "nginx:1.27", rule))
		}
		d.Wake()
		// Held until one digest interval after the first message; two
		// more intervals leave room for the dispatcher's polls.
		time.Sleep(3 * cfg.DigestInterval)
		synctest.Wait()
		pending, _ := ob.PendingCount("slack")
		var msgs []string
		for _, r := range f.Requests() {
			msgs = append(msgs, string(r.Body))
		}
		if pending != 0 {
			last := msgs[len(msgs)-1]
			if i := strings.Index(last, "more like this"); i > 0 {
				last = last[max(0, i-20) : i+20]
			}
			t.Errorf("after 3 digest intervals %d of %d follow-ups still in the outbox; %d messages so far, last: %q", pending, n, len(msgs), last)
		}
		if len(msgs) != 2 || !strings.Contains(msgs[1], "and 40 more like this") {
			t.Errorf("%d messages, want the first and one digest counting all %d follow-ups", len(msgs), n)
		}
	})
}

// TestHeldStreamOutboxStaysSmall: one incident at 20 alerts per
// digest_interval with batch_size 5: the outbox does not grow with the
// stream, and is drained once it stops.
func TestHeldStreamOutboxStaysSmall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := webhookConfig(memSlackURL)
		cfg.DigestInterval = 100 * time.Millisecond
		dc := dispatcherConfig()
		dc.BatchSize = 5
		f, ob, d, stop := startMemRig(t, cfg, dc)
		defer stop()
		var depth []int
		for i := range 400 {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, "nginx:1.27", rule))
			d.Wake()
			time.Sleep(5 * time.Millisecond)
			if i%100 == 49 { // mid-interval: what is held now

				synctest.Wait()
				n, _ := ob.PendingCount("slack")
				depth = append(depth, n)
			}
		}
		time.Sleep(3 * cfg.DigestInterval)
		synctest.Wait()
		n, _ := ob.PendingCount("slack")
		t.Logf("outbox depth mid-interval every 100 alerts, then 3 intervals after the stream: %v; %d messages", depth, len(f.Requests()))
		for i, k := range depth {
			// At 20 alerts per interval, one interval's worth is held at
			// most (plus the batch being read).
			if k > 30 {
				t.Errorf("outbox depth after %d alerts = %d, want at most about one digest interval's alerts (20)", 100*i+50, k)
			}
		}
		if n != 0 {
			t.Errorf("%d alerts still held 3 digest intervals after the stream stopped", n)
		}
	})
}

// TestIntervalLongerThanWindowDoesNotHoldForever: with digest_interval
// longer than digest_window, follow-ups are held only until the incident's
// window ends, not re-held behind each new incident for as long as a steady
// stream lasts.
func TestIntervalLongerThanWindowDoesNotHoldForever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := webhookConfig(memSlackURL)
		cfg.DigestWindow = 100 * time.Millisecond
		cfg.DigestInterval = 250 * time.Millisecond
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		f, ob, d, stop := startMemRig(t, cfg, dispatcherConfig())
		defer stop()
		var seq1 uint64
		for i := range 200 { // 2 s
			q := ob.PutAlert("slack", sinkstest.FalcoAlert(i, "nginx:1.27", rule))
			if i == 1 {
				seq1 = q
			}
			d.Wake()
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		pend, _ := ob.Pending("slack", 0, 10000)
		still := false
		for _, e := range pend {
			if e.Seq == seq1 {
				still = true
			}
		}
		t.Logf("%d messages, %d alerts pending at the end of the 2 s stream", len(f.Requests()), len(pend))
		if still {
			t.Errorf("the first follow-up (enqueued 2 s ago, interval 250ms) is still held")
		}
	})
}

// startMemRig starts the digest tests' set-up in the bubble: the in-memory
// Slack, a sink with cfg posting to it, an outbox and a dispatcher with dc
// (stop it once).
func startMemRig(t *testing.T, cfg slack.Config, dc sinks.Config) (f *sinkstest.Receiver, ob *sinkstest.Outbox, d *sinks.Dispatcher, stop func()) {
	t.Helper()
	f = sinkstest.NewMemReceiver(nil)
	s := newMemSink(t, f, cfg, zerolog.Nop())
	ob = sinkstest.NewOutbox()
	d, stop = startDispatcher(t, s, ob, dc, zerolog.Nop(), prometheus.NewRegistry())
	return f, ob, d, stop
}
