package main

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
)

// TestOutboxBacklogShedsThenRecovers: while a sink is down its outbox fills
// up to store.max_outbox_entries; from then on ingest answers 429 instead of
// letting the queue grow, and once the sink is back the backlog drains,
// every alert accepted is delivered, and ingest accepts again.
func TestOutboxBacklogShedsThenRecovers(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	hook := newReceiver(t, func(int) (int, string) {
		if down.Load() {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	})
	cfg := testConfig(t.TempDir())
	cfg.Sinks.Webhook.Enabled = true
	cfg.Sinks.Webhook.URL = secret.New(hook.URL + "/falco")
	const maxPending = 100
	cfg.Store.MaxOutboxEntries = maxPending
	r := startService(t, cfg, "info")

	accepted, refused := map[string]bool{}, 0
	for i := 0; i < 1000 && refused < 10; i++ {
		raw := falcoAlertJSON(i, "nginx:1.27", "Error")
		code, body, err := post(r.url, raw, false)
		switch {
		case err != nil:
			t.Fatal(err)
		case code == http.StatusOK:
			accepted[falcoID(raw)] = true
		case code == http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("POST = %d %s, want 200 or 429", code, body)
		}
		if refused == 0 {
			// Let the pipeline reach the outbox, so the bound is what stops ingest.
			time.Sleep(time.Millisecond)
		}
	}
	if refused == 0 {
		t.Fatalf("1000 events accepted with the sink down and max_outbox_entries %d: nothing shed", maxPending)
	}
	// The bound is checked before each request, with up to one queue of
	// events still on their way to the outbox.
	if pending := sum(metrics(t, r.url), "falco_scorer_store_outbox_pending"); pending > maxPending+float64(cfg.Scorer.QueueSize) {
		t.Errorf("outbox pending %v with max_outbox_entries %d", pending, maxPending)
	}
	if m := metrics(t, r.url); sum(m, "falco_scorer_store_outbox_backlogged") != 1 {
		t.Errorf("outbox_backlogged gauge = %v while refusing, want 1", sum(m, "falco_scorer_store_outbox_backlogged"))
	}
	if !strings.Contains(r.logs.String(), "outbox backlog full") {
		t.Errorf("no log line about the full outbox:\n%s", r.logs.String())
	}

	down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, err := post(r.url, falcoAlertJSON(5000, "nginx:1.27", "Error"), false)
		if err == nil && code == http.StatusOK {
			accepted[falcoID(falcoAlertJSON(5000, "nginx:1.27", "Error"))] = true
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused 30s after the sink came back (last status %d)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for time.Now().Before(deadline) && len(idsIn(hook.Bodies(), accepted)) < len(accepted) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := idsIn(hook.Bodies(), accepted); len(got) != len(accepted) {
		t.Errorf("delivered %d of %d accepted alerts after the sink came back", len(got), len(accepted))
	}
	t.Logf("accepted %d, refused %d before the sink came back", len(accepted), refused)
}
