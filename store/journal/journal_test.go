package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// testOptions is a log in dir with small segments, synced in the
// background by the test (a long interval).
func testOptions(dir string) Options {
	return Options{
		Dir:                  dir,
		SegmentBytes:         64 << 10,
		GroupCommitMaxEvents: 4096,
		GroupCommitMaxBytes:  4 << 20,
		SyncInterval:         10 * time.Second,
	}
}

func open(t *testing.T, opts Options) *Log {
	t.Helper()
	l, err := Open(opts)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func appendN(t *testing.T, l *Log, n int, pad string) []uint64 {
	t.Helper()
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = fmt.Appendf(nil, "%d-%s", i, pad)
	}
	seqs, err := l.Append(t.Context(), raws)
	if err != nil {
		t.Fatalf("Append = %v", err)
	}
	return seqs
}

func replayed(t *testing.T, l *Log) []uint64 {
	t.Helper()
	var got []uint64
	if err := l.Replay(func(seq uint64, _ []byte) error { got = append(got, seq); return nil }); err != nil {
		t.Fatalf("Replay = %v", err)
	}
	return got
}

// TestReopenWithCallersCompletions: the log keeps records, not their
// completions; at open it counts as outstanding only what the caller's
// Floor and Done do not cover, and numbers new records above all of them.
func TestReopenWithCallersCompletions(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	seqs := appendN(t, l, 10, "x")
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	opts := testOptions(dir)
	opts.Floor = seqs[3]                                           // seqs[0..2] complete
	opts.Done = map[uint64]struct{}{seqs[5]: {}, seqs[9] + 50: {}} // one record, one lost one
	l2 := open(t, opts)
	if got := replayed(t, l2); !slices.Equal(got, seqs) {
		t.Errorf("Replay after reopen = %v, want every record %v", got, seqs)
	}
	if n := l2.Outstanding(); n != 6 {
		t.Errorf("Outstanding after reopen = %d, want 6 (10 less 3 below the floor, less 1 done)", n)
	}
	next := appendN(t, l2, 1, "y")
	if next[0] <= seqs[9]+50 {
		t.Errorf("Append after reopen = seq %d, want above every done sequence (%d)", next[0], seqs[9]+50)
	}
}

// TestRetireRunsTheCallersStepFirst: segments whose records are all
// complete are recycled only after Options.Retire succeeded, with a floor
// above every sequence they hold; a failing Retire keeps them.
func TestRetireRunsTheCallersStepFirst(t *testing.T) {
	var mu sync.Mutex
	var floors []uint64
	fail := true
	opts := testOptions(t.TempDir())
	opts.Retire = func(floor uint64) error {
		mu.Lock()
		defer mu.Unlock()
		floors = append(floors, floor)
		if fail {
			return errors.New("not durable yet")
		}
		return nil
	}
	l := open(t, opts)
	var all []uint64
	for range 40 { // ~40 × 20 × 1 KiB through 64 KiB segments
		all = append(all, appendN(t, l, 20, strings.Repeat("z", 1000))...)
	}
	segs := len(l.Segments())
	if segs < 5 {
		t.Fatalf("%d segments, want several", segs)
	}
	l.Complete(all[:len(all)-1])
	scorertest.WaitFor(t, "a retirement", func() bool { mu.Lock(); defer mu.Unlock(); return len(floors) > 0 })
	if n := len(l.Segments()); n != segs {
		t.Errorf("%d segments after a failing Retire, want all %d kept", n, segs)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	l.Complete([]uint64{all[len(all)-1]})
	scorertest.WaitFor(t, "one segment left", func() bool { return len(l.Segments()) == 1 })
	mu.Lock()
	last := floors[len(floors)-1]
	mu.Unlock()
	active := l.Segments()[0]
	if last != active.First {
		t.Errorf("Retire floor = %d, want the active segment's first sequence %d", last, active.First)
	}
	if n := l.Outstanding(); n != 0 {
		t.Errorf("Outstanding = %d, want 0", n)
	}
}

// TestReplayHoldsOffRetirement: no segment is retirable while Replay reads
// the files, however many of their records complete meanwhile; they retire
// once it is done.
func TestReplayHoldsOffRetirement(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	for range 40 {
		appendN(t, l, 20, strings.Repeat("r", 1000))
	}
	if n := len(l.Segments()); n < 5 {
		t.Fatalf("%d segments, want several", n)
	}
	err := l.Replay(func(seq uint64, _ []byte) error {
		l.Complete([]uint64{seq})
		if segs, _ := l.wal.retirable(); len(segs) > 0 {
			t.Fatalf("%d segments retirable while Replay reads them", len(segs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	scorertest.WaitFor(t, "one segment left", func() bool { return len(l.Segments()) == 1 })
}

// TestCloseWritesQueuedThenRefuses: Close lets the appends already queued
// land, syncs them (background sync mode) and then refuses appends.
func TestCloseWritesQueuedThenRefuses(t *testing.T) {
	var syncs atomic.Int64
	opts := testOptions(t.TempDir())
	opts.SyncFile = func(*os.File) error { syncs.Add(1); return nil }
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, "c")
	before := syncs.Load()
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if syncs.Load() <= before {
		t.Errorf("Close synced nothing; want the final background sync")
	}
	if _, err := l.Append(t.Context(), [][]byte{[]byte("late")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// TestInMemory: records live until completed; Replay gives the others.
func TestInMemory(t *testing.T) {
	l := open(t, Options{InMemory: true, GroupCommitMaxEvents: 10, GroupCommitMaxBytes: 1 << 20, Next: 7})
	seqs := appendN(t, l, 4, "m")
	if seqs[0] != 7 {
		t.Errorf("first seq = %d, want Next (7)", seqs[0])
	}
	l.Complete(seqs[1:3])
	if got, want := replayed(t, l), []uint64{seqs[0], seqs[3]}; !slices.Equal(got, want) {
		t.Errorf("Replay = %v, want %v", got, want)
	}
}

// TestAppendCancelled: a cancelled context comes back as itself.
func TestAppendCancelled(t *testing.T) {
	l := open(t, testOptions(t.TempDir()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled) = %v, want context.Canceled", err)
	}
}

// TestFreeSpaceCheckIsRateLimited: the guard does not statfs per group
// commit, yet notices a disk that filled up within freeCheckBytes of
// journal writes, however soon after its last reading.
func TestFreeSpaceCheckIsRateLimited(t *testing.T) {
	var calls atomic.Int64
	var free atomic.Uint64
	free.Store(1 << 30)
	opts := testOptions(t.TempDir())
	opts.SegmentBytes = 8 << 20
	opts.MinFreeBytes = 64 << 20
	opts.DiskFree = func(string) (uint64, error) { calls.Add(1); return free.Load(), nil }
	l := open(t, opts)
	start := time.Now()
	for range 100 {
		if _, err := l.Append(t.Context(), [][]byte{[]byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, most := calls.Load(), 1+int64(time.Since(start)/freeCheckInterval); n > most {
		t.Errorf("100 small appends read the free space %d times, want at most %d", n, most)
	}
	free.Store(1000)
	event := []byte(strings.Repeat("y", 64<<10))
	for i := range 2 * freeCheckBytes / len(event) {
		if _, err := l.Append(t.Context(), [][]byte{event}); err != nil {
			var werr *WriteError
			if !errors.As(err, &werr) || !errors.Is(err, ErrLowDisk) || werr.Reason != ReasonNoSpace {
				t.Fatalf("Append on a full disk = %v, want a WriteError (no_space) wrapping ErrLowDisk", err)
			}
			return
		} else if i*len(event) > freeCheckBytes {
			t.Fatalf("%d bytes appended after the disk filled up, the guard reads again after %d", (i+1)*len(event), freeCheckBytes)
		}
	}
	t.Fatal("the free-space guard never noticed the full disk")
}
