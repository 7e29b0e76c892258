package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/store/journal"
)

// A sink whose outbox reached max_outbox_entries keeps the whole store
// Backlogged after a restart even when that sink is no longer configured:
// nothing drains it and nothing in the store can clear it.
func TestRemovedSinkDoesNotBacklog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxOutboxEntries = 100
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var puts []scorer.OutboxPut
	for i := range 100 {
		puts = append(puts, scorer.OutboxPut{Sink: "slack", AlertID: fmt.Sprint(i), Payload: []byte("{}")})
	}
	if err := d.Complete(nil, puts); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Restart with Slack disabled: only "kafka" has a dispatcher now.
	d2, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if !d2.Backlogged() {
		t.Fatal("not backlogged before SetSinks: the test does not set up a full outbox")
	}
	d2.SetSinks([]string{"kafka"})
	t.Logf("after restart without the slack sink: Backlogged() = %v, PendingCount(slack) = %d", d2.Backlogged(), must(d2.PendingCount("slack")))
	if d2.Backlogged() {
		t.Errorf("store stays backlogged by a sink nobody drains: ingest answers 429 forever")
	}
}

func must[T any](v T, _ error) T { return v }

// Two concurrent dead-letter replays (two admin calls) re-queue the same
// dead letters twice.
func TestConcurrentDeadLetterReplaysQueueOnce(t *testing.T) {
	d := openAt(t, t.TempDir())
	const n = 3000
	var puts []scorer.OutboxPut
	for i := range n {
		puts = append(puts, scorer.OutboxPut{Sink: "webhook", AlertID: fmt.Sprint("a", i), Payload: bytes.Repeat([]byte("x"), 300)})
	}
	if err := d.Complete(nil, puts); err != nil {
		t.Fatal(err)
	}
	var after uint64
	for {
		es, err := d.Pending("webhook", after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if err := d.DeadLetter(e, "test"); err != nil {
				t.Fatal(err)
			}
		}
		after = es[len(es)-1].Seq
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 2 {
		wg.Go(func() {
			m, err := d.ReplayDeadLetters("webhook")
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += m
			mu.Unlock()
		})
	}
	wg.Wait()
	ids := map[string]int{}
	after = 0
	for {
		es, err := d.Pending("webhook", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			ids[e.AlertID]++
		}
		after = es[len(es)-1].Seq
	}
	dups := 0
	entries := 0
	for _, c := range ids {
		entries += c
		if c > 1 {
			dups++
		}
	}
	t.Logf("%d dead letters; replays reported %d moved; outbox now holds %d entries, %d alert ids twice", n, total, entries, dups)
	if entries != n {
		t.Errorf("outbox holds %d entries for %d dead letters", entries, n)
	}
}

// ReplayDeadLetters moves only the letters there at its start: an alert the
// dispatcher dead-letters again while the replay runs (a payload the sink
// always refuses) waits for the next replay instead of being replayed over
// and over by one admin call. The dispatcher below counts what it
// dead-letters again; once that exceeds the number of letters, the replay
// has taken one of them twice and the dispatcher stops feeding it, so a
// looping replay ends (and fails) instead of running until the test timeout.
// No wall-clock deadline: how long the replay takes depends on the machine.
func TestReplayDeadLettersStopsAtItsStart(t *testing.T) {
	d := openAt(t, t.TempDir())
	const n = 3000
	var puts []scorer.OutboxPut
	for i := range n {
		puts = append(puts, scorer.OutboxPut{Sink: "webhook", AlertID: fmt.Sprint("p", i), Payload: bytes.Repeat([]byte("x"), 300)})
	}
	if err := d.Complete(nil, puts); err != nil {
		t.Fatal(err)
	}
	for after := uint64(0); ; {
		es, _ := d.Pending("webhook", after, 1000)
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if err := d.DeadLetter(e, "http 400"); err != nil {
				t.Fatal(err)
			}
		}
		after = es[len(es)-1].Seq
	}
	// A dispatcher whose sink refuses the alert at once (400 -> dead letter).
	stop := make(chan struct{})
	var again atomic.Int64 // letters dead-lettered again during the replay
	var wg sync.WaitGroup
	wg.Go(func() {
		var cursor uint64
		for again.Load() <= n {
			select {
			case <-stop:
				return
			default:
			}
			es, err := d.Pending("webhook", cursor, 100)
			if err != nil {
				return
			}
			if len(es) == 0 {
				runtime.Gosched()
			}
			for _, e := range es {
				_ = d.DeadLetter(e, "http 400")
				again.Add(1)
				cursor = e.Seq
			}
		}
	})
	moved, err := d.ReplayDeadLetters("webhook")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("ReplayDeadLetters() = %d, %v", moved, err)
	}
	t.Logf("ReplayDeadLetters of %d dead letters moved %d; the dispatcher dead-lettered %d again", n, moved, again.Load())
	if moved != n {
		t.Errorf("ReplayDeadLetters() moved %d, want %d (each dead letter once)", moved, n)
	}
	if got := again.Load(); got > n {
		t.Errorf("the dispatcher dead-lettered %d replayed letters of %d: one replay took a letter twice", got, n)
	}
	// What the dispatcher dead-lettered again waits for the next replay.
	dls, err := d.DeadLetters("webhook", 0)
	if err != nil {
		t.Fatal(err)
	}
	pend, _ := d.PendingCount("webhook")
	if len(dls)+pend != n {
		t.Errorf("after the replay: %d dead letters + %d pending, want %d in all", len(dls), pend, n)
	}
}

// A journal whose surviving records end below the done markers (one
// damaged record in the completed part of the active segment) makes Open
// reuse sequences that done markers still name: a newly acknowledged event
// is then taken for complete and never replayed.
func TestNoSequenceReuseAfterDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := d.Append(t.Context(), [][]byte{[]byte("AAAA"), []byte("BBBB"), []byte("CCCC")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Complete(seqs, nil); err != nil {
		t.Fatal(err)
	}
	path := d.journal.Segments()[0].Path
	d.Close()
	// One flipped byte in the first (already completed) record's payload.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("Z"), journal.HeaderBytes+journal.RecordHeaderBytes); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d2, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	got, err := d2.Append(t.Context(), [][]byte{[]byte("NEW!")}) // acknowledged (HTTP 200)
	if err != nil {
		t.Fatal(err)
	}
	d2.Close() // crash before scoring: the event must come back
	d3, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	var replayed []string
	_ = d3.Replay(func(seq uint64, raw []byte) error {
		replayed = append(replayed, fmt.Sprintf("%d:%s", seq, raw))
		return nil
	})
	t.Logf("first seqs %v; after reopen the new event got seq %v; replay after restart: %q", seqs, got, replayed)
	if len(replayed) != 1 {
		t.Errorf("acknowledged event NEW! not replayed (lost)")
	}
}

func readFloor(t *testing.T, d *DB) uint64 {
	f, _, _, err := d.loadDone()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// After a restart, retired segments kept as spares (old header, old
// records) are loaded as segments and retired again; the floor written then
// is computed from them alone and can go down.
func TestJournalFloorNeverGoesDown(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pad := bytes.Repeat([]byte("y"), 1000)
	var held uint64
	for round := range 100 {
		raws := make([][]byte, 20)
		for i := range raws {
			raws[i] = pad
		}
		seqs, err := d.Append(t.Context(), raws)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			held, seqs = seqs[0], seqs[1:] // holds every segment back
		}
		if err := d.Complete(seqs, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Complete([]uint64{held}, nil); err != nil { // now all retire at once
		t.Fatal(err)
	}
	scorertest.WaitFor(t, "one journal segment left", func() bool { return len(d.journal.Segments()) == 1 })
	before := readFloor(t, d)
	d.Close()
	d2, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	scorertest.WaitFor(t, "one journal segment left after reopening", func() bool { return len(d2.journal.Segments()) == 1 })
	time.Sleep(100 * time.Millisecond)
	after := readFloor(t, d2)
	t.Logf("durable floor before restart %d, after the restart's retirement %d", before, after)
	if after < before {
		t.Errorf("journal floor went down from %d to %d", before, after)
	}
}

// TestImportRefusesTruncatedLastImage: a file cut at a line boundary inside
// its last image (a bucket record missing) is refused, not imported as a
// partial baseline over a good one; the complete file imports.
func TestImportRefusesTruncatedLastImage(t *testing.T) {
	src := openAt(t, t.TempDir())
	b0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var deltas []scorer.BaselineDelta
	for i := range 3 {
		deltas = append(deltas, scorer.BaselineDelta{Image: "nginx", Bucket: b0.Add(time.Duration(i) * time.Hour), Counts: []byte(fmt.Sprint("counts", i)), Meta: []byte("graduated")})
	}
	if err := src.PutDeltas(deltas); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.Export(&buf); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	cut := bytes.Join(lines[:len(lines)-2], nil) // the last bucket line dropped
	dst := openAt(t, t.TempDir())
	if err := dst.PutDeltas(deltas); err != nil {
		t.Fatal(err)
	}
	if imported, err := dst.Import(bytes.NewReader(cut), ImportLimits{}); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Import(truncated) = %v, %v; want a truncation error", imported, err)
	}
	if _, bk, _ := dst.Image("nginx"); len(bk) != 3 {
		t.Errorf("stored buckets after the refused import = %d, want the 3 it had", len(bk))
	}
	if imported, err := dst.Import(bytes.NewReader(buf.Bytes()), ImportLimits{}); err != nil || len(imported) != 1 {
		t.Errorf("Import(complete) = %v, %v; want [nginx]", imported, err)
	}
}

// TestOpenRemovesLeftoverSpareTemp: a temporary spare file left by a crash
// during zero-filling is removed at the next open.
func TestOpenRemovesLeftoverSpareTemp(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	d.Close()
	leftover := filepath.Join(dir, walDirName, "spare-123.tmp")
	if err := os.WriteFile(leftover, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(testConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover %s still there after Open (stat: %v)", leftover, err)
	}
}
