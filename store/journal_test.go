package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/store/journal"
)

func TestJournalConcurrentAppendsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	const workers, each = 64, 40
	var mu sync.Mutex
	bySeq := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				raw := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				seqs, err := d.Append(t.Context(), [][]byte{[]byte(raw)})
				if err != nil || len(seqs) != 1 {
					t.Errorf("Append(%s) = %v, %v, want one seq", raw, seqs, err)
					return
				}
				mu.Lock()
				if old, dup := bySeq[seqs[0]]; dup {
					t.Errorf("seq %d given to %s and %s", seqs[0], old, raw)
				}
				bySeq[seqs[0]] = raw
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bySeq) != workers*each {
		t.Fatalf("appended %d entries, want %d", len(bySeq), workers*each)
	}
	// Complete every third entry; the rest must come back on replay.
	var done []uint64
	want := map[uint64]string{}
	for seq, raw := range bySeq {
		if seq%3 == 0 {
			done = append(done, seq)
		} else {
			want[seq] = raw
		}
	}
	if err := d.Complete(done, nil); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}

	d2 := openAt(t, dir)
	var got []uint64
	err := d2.Replay(func(seq uint64, raw []byte) error {
		if want[seq] != string(raw) {
			t.Errorf("Replay seq %d = %q, want %q", seq, raw, want[seq])
		}
		got = append(got, seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay = %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("Replay returned %d entries, want %d", len(got), len(want))
	}
	if !slices.IsSorted(got) {
		t.Errorf("Replay order not oldest first")
	}
	seqs, err := d2.Append(t.Context(), [][]byte{[]byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] <= uint64(workers*each) {
		t.Errorf("Append after reopen = seq %d, want > %d", seqs[0], workers*each)
	}
}

func TestJournalSeqsNeverReused(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	seqs, err := d.Append(t.Context(), [][]byte{[]byte("a"), []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Complete(seqs, nil); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := openAt(t, dir)
	next, err := d2.Append(t.Context(), [][]byte{[]byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	if next[0] <= seqs[1] {
		t.Errorf("Append after reopen of an empty journal = seq %d, want > %d", next[0], seqs[1])
	}
}

func TestReplayAcrossSegmentsAndStop(t *testing.T) {
	d := openAt(t, t.TempDir())
	raws := make([][]byte, 3000)
	for i := range raws {
		raws[i] = fmt.Appendf(nil, "%d-%s", i, strings.Repeat("x", 200))
	}
	for i := 0; i < len(raws); i += 100 {
		if _, err := d.Append(t.Context(), raws[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.journal.Segments()); n < 3 {
		t.Fatalf("%d segments, want several (the test is about crossing them)", n)
	}
	n := 0
	if err := d.Replay(func(seq uint64, raw []byte) error {
		if string(raw) != string(raws[n]) {
			t.Fatalf("Replay entry %d = %.20q", n, raw)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(raws) {
		t.Errorf("Replay visited %d, want %d", n, len(raws))
	}
	stop := errors.New("stop")
	if err := d.Replay(func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Replay with failing fn = %v, want %v", err, stop)
	}
}

// TestSegmentsRecycled checks that completed segments are reused, that the
// journal's disk stays bounded, and that nothing completed comes back
// after a reopen, including the stale records a recycled file still holds.
func TestSegmentsRecycled(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	pad := strings.Repeat("y", 500)
	var keep []uint64
	for round := range 200 {
		raws := make([][]byte, 20)
		for i := range raws {
			raws[i] = fmt.Appendf(nil, "%d-%d-%s", round, i, pad)
		}
		seqs, err := d.Append(t.Context(), raws)
		if err != nil {
			t.Fatal(err)
		}
		if round == 150 {
			keep = append(keep, seqs[3]) // stays pending
			seqs = slices.Delete(seqs, 3, 4)
		}
		if err := d.Complete(seqs, nil); err != nil {
			t.Fatal(err)
		}
	}
	// 200 × 20 × ~530 B = 2 MB through 256 KiB segments.
	scorertest.WaitFor(t, "the journal retiring down to 5 segments", func() bool { return len(d.journal.Segments()) <= 5 })
	files, _ := filepath.Glob(filepath.Join(dir, walDirName, "*.wal"))
	if len(files) > 5+journal.MaxSpares+1 {
		t.Errorf("%d journal files after recycling, want at most %d", len(files), 5+journal.MaxSpares+1)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := openAt(t, dir)
	var got []uint64
	if err := d2.Replay(func(seq uint64, raw []byte) error {
		got = append(got, seq)
		if !strings.HasPrefix(string(raw), "150-3-") {
			t.Errorf("replayed %d: %.10q, want only the pending 150-3", seq, raw)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keep) {
		t.Errorf("replayed %v, want %v", got, keep)
	}
	if n := d2.journal.Outstanding(); n != 1 {
		t.Errorf("outstanding after reopen = %d, want 1", n)
	}
}

// TestTornTailIsTheEnd writes garbage over the last record (a group whose
// sync never finished): reopening keeps every record before it, drops it,
// and numbers new events above it.
func TestTornTailIsTheEnd(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	seqs, err := d.Append(t.Context(), [][]byte{[]byte("first"), []byte("second"), []byte("third")})
	if err != nil {
		t.Fatal(err)
	}
	seg := d.journal.Segments()[0]
	path := seg.Path
	end := seg.End
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XX"), end-2); err != nil { // inside "third"
		t.Fatal(err)
	}
	f.Close()
	d2 := openAt(t, dir)
	var got []string
	if err := d2.Replay(func(_ uint64, raw []byte) error { got = append(got, string(raw)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("replay after a torn tail = %q, want first, second", got)
	}
	next, err := d2.Append(t.Context(), [][]byte{[]byte("fourth")})
	if err != nil {
		t.Fatal(err)
	}
	if next[0] <= seqs[1] {
		t.Errorf("seq after torn tail = %d, want > %d", next[0], seqs[1])
	}
	got = nil
	if err := d2.Replay(func(_ uint64, raw []byte) error { got = append(got, string(raw)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"first", "second", "fourth"}) {
		t.Errorf("replay after appending over a torn tail = %q", got)
	}
}

// TestCompleteIsAtomic checks, from concurrent snapshots, that a batch's
// outbox entry appears exactly when its done marker does.
func TestCompleteIsAtomic(t *testing.T) {
	d := openAt(t, t.TempDir())
	const batches, per = 200, 5
	all := make([][]uint64, batches)
	for b := range all {
		raws := make([][]byte, per)
		for i := range raws {
			raws[i] = fmt.Appendf(nil, "b%d-%d", b, i)
		}
		seqs, err := d.Append(t.Context(), raws)
		if err != nil {
			t.Fatal(err)
		}
		all[b] = seqs
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			err := d.bdb.View(func(txn *badger.Txn) error {
				marked := map[uint64]bool{}
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDone}})
				for it.Rewind(); it.Valid(); it.Next() {
					marked[be64(it.Item().Key()[1:9])] = true
				}
				it.Close()
				for b, seqs := range all {
					_, err := txn.Get(outboxKey("s", uint64(b)+1))
					inOutbox := err == nil
					if marked[seqs[per-1]] != inOutbox {
						t.Errorf("batch %d: done marker %v, outbox entry %v: not atomic", b, marked[seqs[per-1]], inOutbox)
						return errors.New("stop")
					}
				}
				return nil
			})
			if err != nil {
				return
			}
		}
	})
	for b, seqs := range all {
		if err := d.Complete(seqs, []scorer.OutboxPut{{Sink: "s", AlertID: fmt.Sprint(b), Payload: []byte("p")}}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}

func TestAppendContextCancelledAndLimits(t *testing.T) {
	d := openAt(t, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled) = %v, want context.Canceled", err)
	}
	big := make([]byte, d.cfg.MaxEventBytes+1)
	if _, err := d.Append(t.Context(), [][]byte{[]byte("x"), big}); !errors.Is(err, scorer.ErrTooLarge) || errors.Is(err, scorer.ErrUnavailable) {
		t.Errorf("Append(too big) = %v, want ErrTooLarge (not ErrUnavailable)", err)
	}
	if seqs, err := d.Append(t.Context(), nil); err != nil || seqs != nil {
		t.Errorf("Append(nil) = %v, %v, want nil, nil", seqs, err)
	}
}

func TestAppendAfterCloseIsUnavailable(t *testing.T) {
	d := openAt(t, "")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); !errors.Is(err, scorer.ErrUnavailable) {
		t.Errorf("Append after Close = %v, want ErrUnavailable", err)
	}
	if err := d.Complete([]uint64{1}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Complete after Close = %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestLowDiskRefusesAndRecovers drives the free-space guard (the only disk
// fault that can be produced reliably here: as root, permissions do not stop
// writes, and a real ENOSPC on Badger's mmapped files is a SIGBUS).
func TestLowDiskRefusesAndRecovers(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig(t.TempDir())
	cfg.MinFreeBytes = MinFreeFloor
	d, err := Open(cfg, zerolog.New(&logs), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mu sync.Mutex
	free := uint64(1000)
	d.diskFree = func(string) (uint64, error) { mu.Lock(); defer mu.Unlock(); return free, nil }
	for i := range 20 {
		_, err := d.Append(t.Context(), [][]byte{[]byte("x")})
		if !errors.Is(err, scorer.ErrUnavailable) {
			t.Fatalf("Append %d on a full disk = %v, want ErrUnavailable", i, err)
		}
	}
	if n := strings.Count(logs.String(), "journal cannot persist events"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
	mu.Lock()
	free = 1 << 30
	mu.Unlock()
	if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
		t.Fatalf("Append after space freed = %v", err)
	}
	if n := strings.Count(logs.String(), "journal writes recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"wrapped ENOSPC", fmt.Errorf("write: %w", syscall.ENOSPC), reasonNoSpace},
		{"badger-flattened ENOSPC", errors.New("while writing to memTable err: write /d/00001.mem: no space left on device"), reasonNoSpace},
		{"quota", fmt.Errorf("x: %w", syscall.EDQUOT), reasonNoSpace},
		{"low disk guard", fmt.Errorf("%w: 1 bytes", journal.ErrLowDisk), reasonNoSpace},
		{"read-only fs", errors.New("sync: read-only file system"), reasonReadOnly},
		{"permission", fmt.Errorf("open: %w", syscall.EACCES), reasonPermission},
		{"eperm text", errors.New("operation not permitted"), reasonPermission},
		{"io", fmt.Errorf("sync: %w", syscall.EIO), reasonIO},
		{"closed", badger.ErrDBClosed, reasonClosed},
		{"too big", badger.ErrTxnTooBig, reasonTooLarge},
		{"other", errors.New("boom"), reasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
			if u := unavailable("append", tt.err); !errors.Is(u, scorer.ErrUnavailable) || !errors.Is(u, tt.err) {
				t.Errorf("unavailable(%v) = %v, want it to wrap ErrUnavailable and the cause", tt.err, u)
			}
		})
	}
}

func TestGroupCommitBatches(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.GroupCommitMaxDelay = 20 * time.Millisecond
	d, reg := openWithRegistry(t, cfg)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits := counterValueOf(t, reg, "falco_scorer_store_journal_commits_total")
	if commits < 1 || commits > 25 {
		t.Errorf("50 concurrent appends took %v commits, want between 1 and 25", commits)
	}
}

func counterValueOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	for _, m := range gatherMetric(t, reg, name).GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// gatherMetric returns the metric family name from reg.
func gatherMetric(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// TestReplayWhileCompleting completes each entry from inside Replay's
// callback, as the pipeline does at start-up: no segment may retire (and
// have its file closed or reused) while Replay reads it, Replay visits
// every pending entry, and the segments retire once it is done.
func TestReplayWhileCompleting(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.JournalSegmentBytes = 64 << 10
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("z", 1000)
	const n = 2000 // ~2 MB: about 30 segments
	for i := 0; i < n; i += 50 {
		raws := make([][]byte, 50)
		for j := range raws {
			raws[j] = fmt.Appendf(nil, "%d-%s", i+j, pad)
		}
		seqs, err := d.Append(t.Context(), raws)
		if err != nil {
			t.Fatal(err)
		}
		// Half are already complete, so Replay reads past a segment's
		// last pending entry.
		if err := d.Complete(seqs[25:], nil); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	d, err = Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	seen := 0
	segs := len(d.journal.Segments())
	err = d.Replay(func(seq uint64, raw []byte) error {
		seen++
		if err := d.Complete([]uint64{seq}, nil); err != nil {
			return err
		}
		if n := len(d.journal.Segments()); n != segs {
			t.Fatalf("%d segments while Replay reads them, %d before: segments retired", n, segs)
		}
		time.Sleep(200 * time.Microsecond) // let the retirer run before the next read
		return nil
	})
	if err != nil {
		t.Fatalf("Replay while completing = %v", err)
	}
	if seen != n/2 {
		t.Errorf("Replay visited %d entries, want %d", seen, n/2)
	}
	scorertest.WaitFor(t, "the journal retiring down to 2 segments", func() bool { return len(d.journal.Segments()) <= 2 })
}

// TestLoneAppenderDoesNotLinger: the group-commit delay applies only while
// appends are concurrent; one client appending in a loop never waits for it.
// It runs in a synctest bubble: the clock advances only while every
// goroutine of the store waits, so the elapsed time is the time spent
// lingering, however slow the disk or busy the machine.
func TestLoneAppenderDoesNotLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t.TempDir())
		cfg.GroupCommitMaxDelay = 200 * time.Millisecond
		d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		start := time.Now()
		for range 10 {
			if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if el := time.Since(start); el >= cfg.GroupCommitMaxDelay {
			t.Errorf("10 sequential appends waited %s with a 200ms delay: the lone appender lingered", el)
		}
	})
}

// TestLingerEndsWhenAppendersReturn: a few concurrent appenders in a closed
// loop (each waits for its ack, then appends again, as Falco connections
// do) must not wait out the group-commit delay on every commit: the
// committer goes ahead once the callers of the last group are back. In a
// synctest bubble, as TestLoneAppenderDoesNotLinger.
func TestLingerEndsWhenAppendersReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t.TempDir())
		cfg.GroupCommitMaxDelay = 500 * time.Millisecond
		d, reg := openWithRegistry(t, cfg)
		const appenders, rounds = 4, 10
		start := time.Now()
		// The appenders go in rounds, all of them back before the next
		// round: were one to finish its rounds early, the committer would
		// wait out the delay for it once, rightly (it cannot tell a caller
		// gone from one still coming), and how many did so would depend
		// on the schedule.
		for range rounds {
			var wg sync.WaitGroup
			for range appenders {
				wg.Go(func() {
					if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		// Waiting out the delay on every commit takes at least 10 × 500 ms.
		// Some waits are right and depend on the schedule: the first group,
		// before the appenders are known, and a round's straggler queued
		// after the others were committed (a caller that is not coming
		// back looks like one still coming). CI once saw two. Fewer than
		// half the rounds may wait.
		if el := time.Since(start); el >= rounds/2*cfg.GroupCommitMaxDelay {
			commits := counterValueOf(t, reg, "falco_scorer_store_journal_commits_total")
			t.Errorf("%d appenders × %d rounds waited %s in %v commits with a 500ms delay: the committer lingered after its callers were back",
				appenders, rounds, el.Round(time.Millisecond), commits)
		}
	})
}

// TestJournalSyncInterval: with journal_sync_interval an append is
// acknowledged without a sync and the background sync covers what was
// written. Once a background sync failed, every group syncs before its
// acknowledgement (so ingest answers 503 while the disk fails), until
// restart, and the next group starts a new segment (the failed range may be
// a hole that would hide later records of its segment).
func TestJournalSyncInterval(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.JournalSyncInterval = 10 * time.Second // the test runs the background sync itself
	d, reg := openWithRegistry(t, cfg)
	var syncs atomic.Int64
	var failSync atomic.Bool
	d.syncFile = func(*os.File) error {
		syncs.Add(1)
		if failSync.Load() {
			return syscall.EIO
		}
		return nil
	}
	appendOne := func() error {
		_, err := d.Append(t.Context(), [][]byte{[]byte("x")})
		return err
	}
	for range 10 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	// The first append opens a segment, whose header is synced at once.
	if n := syncs.Load(); n != 1 {
		t.Fatalf("10 appends synced %d times, want 1 (the new segment's header; the background sync does the rest)", n)
	}
	if err := d.journal.Sync(); err != nil || syncs.Load() != 2 {
		t.Fatalf("background sync after 10 appends into one segment = %v, %d syncs; want nil, 2", err, syncs.Load())
	}
	if err := d.journal.Sync(); err != nil || syncs.Load() != 2 {
		t.Fatalf("background sync with nothing written = %v, %d syncs; want nil, still 2", err, syncs.Load())
	}

	failSync.Store(true)
	if err := appendOne(); err != nil {
		t.Fatalf("append before the failing sync = %v, want nil", err)
	}
	segsBefore := len(d.journal.Segments())
	if err := d.journal.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("failing background sync = %v, want EIO", err)
	}
	if got := counterValueOf(t, reg, "falco_scorer_store_maintenance_errors_total"); got != 1 {
		t.Errorf("maintenance errors after a failed background sync = %v, want 1", got)
	}
	if err := appendOne(); !errors.Is(err, scorer.ErrUnavailable) {
		t.Fatalf("append after a failed background sync, disk still failing = %v, want ErrUnavailable", err)
	}
	failSync.Store(false)
	for i := range 3 {
		before := syncs.Load()
		if err := appendOne(); err != nil {
			t.Fatalf("append %d once the disk answers again = %v", i, err)
		}
		if n := syncs.Load() - before; n != 1 {
			t.Errorf("append %d after a failed background sync synced %d times, want 1 (until restart)", i, n)
		}
	}
	if segs := len(d.journal.Segments()); segs <= segsBefore {
		t.Errorf("segments after the failed sync = %d, want more than the %d before (a new one)", segs, segsBefore)
	}
}

// histogramCount reads the sample count of a histogram in reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	return gatherMetric(t, reg, name).GetMetric()[0].GetHistogram().GetSampleCount()
}

// TestJournalBackgroundSync: the background syncer runs on its own, and
// Close syncs what was written since its last pass.
func TestJournalBackgroundSync(t *testing.T) {
	const metric = "falco_scorer_store_journal_background_sync_seconds"
	// openAndAppend opens a store syncing every interval and appends one event.
	openAndAppend := func(t *testing.T, interval time.Duration) (*DB, *prometheus.Registry) {
		cfg := testConfig(t.TempDir())
		cfg.JournalSyncInterval = interval
		d, reg := openWithRegistry(t, cfg)
		if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
			t.Fatal(err)
		}
		return d, reg
	}
	t.Run("ticker", func(t *testing.T) {
		_, reg := openAndAppend(t, 10*time.Millisecond)
		scorertest.WaitFor(t, metric+" observed", func() bool { return histogramCount(t, reg, metric) > 0 })
	})
	t.Run("close", func(t *testing.T) {
		d, reg := openAndAppend(t, 10*time.Second)
		if n := histogramCount(t, reg, metric); n != 0 {
			t.Fatalf("background syncs before Close = %d, want 0", n)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if n := histogramCount(t, reg, metric); n != 1 {
			t.Errorf("background syncs after Close = %d, want 1", n)
		}
	})
}

// TestOpenKeepsUnknownSegmentFiles: a journal file with a foreign header may
// hold acknowledged events, so Open refuses to start rather than delete it;
// an all-zero file is an unused segment and becomes a spare.
func TestOpenKeepsUnknownSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	cfg := testConfig(dir)
	zero := filepath.Join(dir, walDirName, "00000000000000ff.wal")
	if err := os.WriteFile(zero, make([]byte, cfg.JournalSegmentBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open with an all-zero segment file = %v", err)
	}
	if n := d2.journal.Spares(); n < 1 {
		t.Errorf("all-zero segment file not kept as a spare (%d spares)", n)
	}
	d2.Close()
	bad := filepath.Join(dir, walDirName, "0000000000000100.wal")
	if err := os.WriteFile(bad, []byte("GARBAGE-HEADER-AND-MORE"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d3, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry()); err == nil {
		d3.Close()
		t.Fatal("Open with a foreign journal file succeeded, want a refusal naming it")
	} else if !strings.Contains(err.Error(), "0000000000000100.wal") {
		t.Errorf("Open error %q does not name the file", err)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Errorf("the foreign file was removed: %v", err)
	}
}

// TestDefaultDurability pins the promise the README states: by default an
// append is acknowledged once written (no sync on the acknowledgement path
// beyond a new segment's header) and the background syncer makes it
// durable; journal_sync_interval 0 syncs every group before its
// acknowledgement. The syncs are counted, never timed.
func TestDefaultDurability(t *testing.T) {
	if iv := DefaultConfig().JournalSyncInterval; iv != 100*time.Millisecond {
		t.Fatalf("DefaultConfig().JournalSyncInterval = %s, want 100ms (the README's durability sentence)", iv)
	}
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     int64 // syncs for 10 appends into a fresh journal
	}{
		{"default", DefaultConfig().JournalSyncInterval, 1}, // the new segment's header
		{"strict", 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.JournalSyncInterval = tc.interval
			d, reg := openWithRegistry(t, cfg)
			var syncs atomic.Int64
			d.syncFile = func(*os.File) error { syncs.Add(1); return nil }
			for range 10 {
				if _, err := d.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			if n := syncs.Load(); n != tc.want {
				t.Errorf("10 sequential appends synced %d times before their acknowledgements, want %d", n, tc.want)
			}
			if got := counterValueOf(t, reg, "falco_scorer_store_journal_syncs_total"); got != float64(tc.want) {
				t.Errorf("falco_scorer_store_journal_syncs_total = %v, want %d", got, tc.want)
			}
		})
	}
}
