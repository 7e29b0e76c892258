package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func puts(sink string, ids ...string) []scorer.OutboxPut {
	out := make([]scorer.OutboxPut, len(ids))
	for i, id := range ids {
		out[i] = scorer.OutboxPut{Sink: sink, AlertID: id, Payload: []byte(`{"id":"` + id + `"}`)}
	}
	return out
}

func ids(es []scorer.OutboxEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.AlertID
	}
	return out
}

func TestOutboxLifecycleAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	d.now = clock.Now
	// Two sinks, one a prefix of the other, must not see each other's entries.
	if err := d.Complete(nil, append(puts("kafka", "a", "b", "c"), puts("kafka2", "x")...)); err != nil {
		t.Fatal(err)
	}
	if err := d.Complete(nil, puts("kafka", "d")); err != nil {
		t.Fatal(err)
	}
	got, err := d.Pending("kafka", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, ids(got)); diff != "" {
		t.Fatalf("Pending(kafka, 0, 10) ids (-want +got):\n%s", diff)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Sink != "kafka" || !e.Enqueued.Equal(clock.Now()) || string(e.Payload) != `{"id":"`+e.AlertID+`"}` {
			t.Errorf("Pending entry %d = %+v", i, e)
		}
	}
	tests := []struct {
		name  string
		after uint64
		limit int
		want  []string
	}{
		{"limit", 0, 2, []string{"a", "b"}},
		{"after cursor", 2, 10, []string{"c", "d"}},
		{"past end", 4, 10, []string{}},
		{"zero limit", 0, 0, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Pending("kafka", tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("Pending(kafka, %d, %d) (-want +got):\n%s", tt.after, tt.limit, diff)
			}
		})
	}
	if err := d.Ack("kafka", []uint64{1, 3, 99}); err != nil {
		t.Fatal(err)
	}
	clock.Set(clock.Now().Add(time.Hour))
	if err := d.DeadLetter(got[1], "http 400: bad request"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Pending("kafka", 0, 10); !cmp.Equal(ids(got), []string{"d"}) {
		t.Errorf("Pending after ack and dead letter = %v, want [d]", ids(got))
	}
	d.Close()

	d2 := openAt(t, dir)
	d2.now = clock.Now
	dls, err := d2.DeadLetters("kafka", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].AlertID != "b" || dls[0].Reason != "http 400: bad request" || dls[0].Seq != 2 ||
		!dls[0].DeadAt.Equal(clock.Now()) || !dls[0].Enqueued.Equal(clock.Now().Add(-time.Hour)) {
		t.Fatalf("DeadLetters after reopen = %+v", dls)
	}
	if all, _ := d2.DeadLetters("", 0); len(all) != 1 {
		t.Errorf("DeadLetters(all) = %d entries, want 1", len(all))
	}
	n, err := d2.ReplayDeadLetters("kafka")
	if err != nil || n != 1 {
		t.Fatalf("ReplayDeadLetters = %d, %v, want 1, nil", n, err)
	}
	pending, _ := d2.Pending("kafka", 0, 10)
	if diff := cmp.Diff([]string{"d", "b"}, ids(pending)); diff != "" {
		t.Fatalf("Pending after replay (-want +got):\n%s", diff)
	}
	if pending[1].Seq != 5 {
		t.Errorf("replayed entry seq = %d, want 5 (new, above every earlier seq)", pending[1].Seq)
	}
	if dls, _ := d2.DeadLetters("kafka", 10); len(dls) != 0 {
		t.Errorf("DeadLetters after replay = %d entries, want 0", len(dls))
	}
	// Ack everything, reopen: the next seq still grows.
	if err := d2.Ack("kafka", []uint64{4, 5}); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d3 := openAt(t, dir)
	if err := d3.Complete(nil, puts("kafka", "e")); err != nil {
		t.Fatal(err)
	}
	if got, _ := d3.Pending("kafka", 0, 10); len(got) != 1 || got[0].Seq != 6 {
		t.Errorf("Pending after full ack and reopen = %+v, want one entry with seq 6", got)
	}
	if got, _ := d3.Pending("kafka2", 0, 10); !cmp.Equal(ids(got), []string{"x"}) {
		t.Errorf("Pending(kafka2) = %v, want [x]", ids(got))
	}
}

func TestOutboxRejectsBadNames(t *testing.T) {
	d := openAt(t, "")
	long := fmt.Sprintf("%0300d", 0)
	tests := []struct {
		name string
		err  error
	}{
		{"empty sink complete", d.Complete(nil, puts("", "a"))},
		{"long sink complete", d.Complete(nil, puts(long, "a"))},
		{"long alert id", d.Complete(nil, []scorer.OutboxPut{{Sink: "s", AlertID: long + long + long + long}})},
		{"empty sink ack", d.Ack("", []uint64{1})},
		{"empty sink dead letter", d.DeadLetter(scorer.OutboxEntry{}, "x")},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

func TestPendingCountFollowsPutAndAck(t *testing.T) {
	d := openAt(t, "")
	if err := d.Complete(nil, []scorer.OutboxPut{{Sink: "kafka", AlertID: "a", Payload: []byte("{}")}, {Sink: "kafka", AlertID: "b", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.PendingCount("kafka"); n != 2 {
		t.Fatalf("PendingCount(kafka) = %d, want 2", n)
	}
	es, err := d.Pending("kafka", 0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("Pending = %d, %v", len(es), err)
	}
	if err := d.Ack("kafka", []uint64{es[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.PendingCount("kafka"); n != 1 {
		t.Errorf("PendingCount(kafka) after ack = %d, want 1", n)
	}
}

// TestBackloggedAtMaxOutboxEntries: Backlogged turns on when one sink's
// pending entries reach max_outbox_entries and off only once acks take it
// below 90 % of that, and survives a reopen.
func TestBackloggedAtMaxOutboxEntries(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxOutboxEntries = 100
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	put := func(sink string, n int) {
		t.Helper()
		puts := make([]scorer.OutboxPut, n)
		for i := range puts {
			puts[i] = scorer.OutboxPut{Sink: sink, AlertID: fmt.Sprint(i), Payload: []byte("{}")}
		}
		if err := d.Complete(nil, puts); err != nil {
			t.Fatal(err)
		}
	}
	put("kafka", 50)
	put("slack", 99)
	if d.Backlogged() {
		t.Fatal("Backlogged with 50 and 99 pending, max 100")
	}
	put("slack", 1)
	if !d.Backlogged() {
		t.Fatal("not Backlogged with 100 pending for slack, max 100")
	}
	d.Close()
	d, err = Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Backlogged() {
		t.Fatal("not Backlogged after reopen")
	}
	ack := func(n int) {
		t.Helper()
		es, err := d.Pending("slack", 0, n)
		if err != nil || len(es) != n {
			t.Fatalf("Pending = %d, %v", len(es), err)
		}
		seqs := make([]uint64, n)
		for i, e := range es {
			seqs[i] = e.Seq
		}
		if err := d.Ack("slack", seqs); err != nil {
			t.Fatal(err)
		}
	}
	ack(10) // 90 pending: still on (hysteresis)
	if !d.Backlogged() {
		t.Error("Backlogged turned off at 90 % of the bound, want it on until below")
	}
	ack(1) // 89
	if d.Backlogged() {
		t.Error("still Backlogged with slack at 89 of 100")
	}
}

// TestPendingFromMemoryMatchesDisk drives a dispatcher-like loop (random
// batch sizes, acks, dead letters, dead letters re-queued with new
// sequences, cursor restarts) and checks that every Pending answer, from the
// cache of recent entries or not, is exactly what Badger holds.
func TestPendingFromMemoryMatchesDisk(t *testing.T) {
	d := openAt(t, t.TempDir())
	// What is compared is the cache against Badger, not durability: no
	// fsync per Complete (thousands of them were most of this test's time).
	d.noSync = true
	rng := rand.New(rand.NewPCG(7, 8))
	cursor := map[string]uint64{}
	var fromCache, n int
	for step := range 3000 {
		switch op := rng.IntN(10); {
		case op < 4:
			var ps []scorer.OutboxPut
			for i := range rng.IntN(40) {
				sink := []string{"kafka", "slack"}[rng.IntN(2)]
				id := fmt.Sprintf("a%d-%d", step, i)
				h := scorer.AlertHeader{ID: id}
				ps = append(ps, scorer.OutboxPut{Sink: sink, AlertID: id, Payload: []byte(`{"id":"` + id + `"}`), Header: &h})
			}
			if err := d.Complete(nil, ps); err != nil {
				t.Fatal(err)
			}
		case op == 4:
			if _, err := d.ReplayDeadLetters(""); err != nil {
				t.Fatal(err)
			}
		case op == 5 && rng.IntN(10) == 0:
			cursor = map[string]uint64{} // a dispatcher starts over
		default:
			sink := []string{"kafka", "slack"}[rng.IntN(2)]
			limit := 1 + rng.IntN(60)
			want, err := d.pendingFromDisk(sink, cursor[sink], limit)
			if err != nil {
				t.Fatal(err)
			}
			d.outbox.mu.Lock()
			cached := d.recent[sink] != nil && len(d.recent[sink].entries) > 0
			d.outbox.mu.Unlock()
			got, err := d.Pending(sink, cursor[sink], limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got {
				if e.Header != nil {
					fromCache++
					if e.Header.ID != e.AlertID {
						t.Fatalf("step %d: cached header %+v of entry %s", step, e.Header, e.AlertID)
					}
				}
			}
			n += len(got)
			// The cache may answer with fewer entries than Badger holds
			// (those it holds end where dead letters were re-queued after
			// them), never with others, and never with none when Badger has
			// some: the next call, from the last one handed out, gets the rest.
			if len(got) > len(want) || (len(got) == 0 && len(want) > 0) {
				t.Fatalf("step %d: Pending(%s, %d, %d) gave %d entries, Badger holds %d", step, sink, cursor[sink], limit, len(got), len(want))
			}
			// A plain comparison first: cmp.Diff on every step was a
			// quarter of this test's CPU.
			if !sameEntries(want[:len(got)], got) {
				d := cmp.Diff(want[:len(got)], got, cmpopts.IgnoreFields(scorer.OutboxEntry{}, "Header"))
				t.Fatalf("step %d: Pending(%s, %d, %d) (cache had entries: %v) (-disk +got):\n%s", step, sink, cursor[sink], limit, cached, d)
			}
			if len(got) == 0 {
				continue
			}
			cursor[sink] = got[len(got)-1].Seq
			var acked []uint64
			for _, e := range got {
				if rng.IntN(20) == 0 {
					if err := d.DeadLetter(e, "test"); err != nil {
						t.Fatal(err)
					}
					continue
				}
				acked = append(acked, e.Seq)
			}
			if err := d.Ack(sink, acked); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fromCache == 0 || fromCache == n {
		t.Errorf("%d of %d entries came from the cache: the test did not exercise both paths", fromCache, n)
	}
	t.Logf("%d entries handed out, %d from the cache", n, fromCache)
}

// sameEntries reports whether a and b hold the same entries, Header aside.
func sameEntries(a, b []scorer.OutboxEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Sink != y.Sink || x.Seq != y.Seq || x.AlertID != y.AlertID || !bytes.Equal(x.Payload, y.Payload) || !x.Enqueued.Equal(y.Enqueued) {
			return false
		}
	}
	return true
}

// TestPendingForgetsWhatBadgerHandedOut: an entry Complete caches while a
// Pending is reading Badger is handed out by that read; the cache must not
// hand it out again (found in review: after an ack, a dispatcher starting
// over got it once more, though Badger no longer held it).
func TestPendingForgetsWhatBadgerHandedOut(t *testing.T) {
	d := openAt(t, t.TempDir())
	// Complete commits and caches between the cache's (empty) answer and
	// Pending's read of Badger, which then hands the entries out.
	d.pendingBeforeRead = func() {
		d.pendingBeforeRead = nil
		if err := d.Complete(nil, puts("kafka", "a", "b", "c")); err != nil {
			t.Error(err)
		}
	}
	got, err := d.Pending("kafka", 0, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("Pending = %v, %v; want the 3 entries from Badger", got, err)
	}
	if err := d.Ack("kafka", []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if again, err := d.Pending("kafka", 0, 10); err != nil || len(again) != 0 {
		t.Errorf("Pending after every entry was acked = %d entries, %v; Badger holds none", len(again), err)
	}
}

// TestPendingAfterCloseFails: a closed store answers ErrClosed, not what its
// cache of recent entries still holds.
func TestPendingAfterCloseFails(t *testing.T) {
	d := openAt(t, "")
	if err := d.Complete(nil, puts("kafka", "a")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Pending("kafka", 0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Pending on a closed store = %d entries, %v; want ErrClosed", len(got), err)
	}
}
