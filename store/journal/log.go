package journal

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Options configure a Log. Sizes and delays are the caller's, checked by
// it; the zero value of the rest is usable.
type Options struct {
	// Dir holds the segment files (created if missing). Unused InMemory.
	Dir string
	// InMemory keeps records in memory until they are completed; nothing
	// survives Close and nothing is synced.
	InMemory bool
	// SegmentBytes is the size of one segment file (a group larger than
	// that gets a segment of its own size).
	SegmentBytes int64

	// GroupCommitMaxDelay, GroupCommitMaxEvents and GroupCommitMaxBytes
	// shape group commits (see Append).
	GroupCommitMaxDelay  time.Duration
	GroupCommitMaxEvents int
	GroupCommitMaxBytes  int
	// SyncInterval 0 syncs every group before its callers are released;
	// above 0 groups are released once written and a background goroutine
	// syncs them this often.
	SyncInterval time.Duration

	// MinFreeBytes refuses groups (ErrLowDisk) while the file system
	// holding DiskDir has less free space than this, as DiskFree reads it.
	// 0 disables the guard.
	MinFreeBytes int64
	// DiskDir is the directory whose file system is watched, and which a
	// logged write failure names; default Dir.
	DiskDir  string
	DiskFree func(dir string) (uint64, error)

	// SyncFile syncs a segment file's data; default DataSync.
	SyncFile func(*os.File) error

	// What the caller knows of earlier completions, so that no sequence it
	// recorded is ever handed out again: sequences start at or above Next,
	// above Floor, above every Done and above every record found. Records
	// below Floor or in Done count as complete.
	Next  uint64
	Floor uint64
	Done  map[uint64]struct{}

	// Retire is called by the retirer before segments whose records are all
	// complete are recycled; floor is above every sequence they hold. The
	// caller makes its record of those completions durable (and may record
	// floor for the next Open); an error keeps the segments until the next
	// attempt. Nil recycles at once.
	Retire func(floor uint64) error

	// Classify gives a failure its bounded reason (metric label, log
	// field); default Classify.
	Classify func(error) string
	Logger   zerolog.Logger
	// Metrics nil: counted, but in collectors nobody registered.
	Metrics *Metrics
}

// Metrics are the log's instruments, created and registered by the caller.
type Metrics struct {
	Appended              prometheus.Counter     // records written
	Commits               prometheus.Counter     // group commits
	CommitEvents          prometheus.Observer    // records per group commit
	CommitSeconds         prometheus.Observer    // time to write (and sync) one group
	BackgroundSyncSeconds prometheus.Observer    // time of one background sync that synced something
	Syncs                 prometheus.Counter     // fdatasyncs of segment files
	Refused               *prometheus.CounterVec // records refused, by reason (one label)
	Unavailable           prometheus.Gauge       // 1 while writes fail
	Outstanding           prometheus.Gauge       // records not yet completed
	SyncErrors            prometheus.Counter     // failed background syncs
	SegmentErrors         prometheus.Counter     // failed retirements or spare preparations
}

func unregisteredMetrics() *Metrics {
	return &Metrics{
		Appended:              prometheus.NewCounter(prometheus.CounterOpts{Name: "appended"}),
		Commits:               prometheus.NewCounter(prometheus.CounterOpts{Name: "commits"}),
		CommitEvents:          prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commit_events"}),
		CommitSeconds:         prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commit_seconds"}),
		BackgroundSyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "background_sync_seconds"}),
		Syncs:                 prometheus.NewCounter(prometheus.CounterOpts{Name: "syncs"}),
		Refused:               prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"reason"}),
		Unavailable:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "unavailable"}),
		Outstanding:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "outstanding"}),
		SyncErrors:            prometheus.NewCounter(prometheus.CounterOpts{Name: "sync_errors"}),
		SegmentErrors:         prometheus.NewCounter(prometheus.CounterOpts{Name: "segment_errors"}),
	}
}

// Log is a write-ahead log of opaque records in segment files (or in
// memory). See the package documentation.
type Log struct {
	opts Options
	log  zerolog.Logger
	m    *Metrics

	wal *wal        // the segment files (nil InMemory)
	mem *memJournal // the records of an in-memory log (nil otherwise)
	c   *committer

	syncFailed atomic.Bool   // a background sync failed: groups sync before their release until restart
	retireWake chan struct{} // capacity 1: "a segment may be retirable, or a spare was used"

	lc        lifecycle
	syncErr   error // the final sync's, set by the lifecycle's stop
	closeOnce sync.Once
}

// Open opens (creating if needed) the segment files in opts.Dir, or an
// empty in-memory log, and starts its goroutines. Call Close when done.
func Open(opts Options) (*Log, error) {
	if opts.DiskDir == "" {
		opts.DiskDir = opts.Dir
	}
	if opts.DiskFree == nil {
		opts.MinFreeBytes = 0
	}
	if opts.SyncFile == nil {
		opts.SyncFile = DataSync
	}
	if opts.Classify == nil {
		opts.Classify = Classify
	}
	l := &Log{opts: opts, log: opts.Logger, m: opts.Metrics, retireWake: make(chan struct{}, 1)}
	if l.m == nil {
		l.m = unregisteredMetrics()
	}
	next := max(opts.Next, 1)
	if opts.InMemory {
		l.mem = &memJournal{entries: map[uint64][]byte{}}
	} else {
		w, lastSeq, err := openWAL(opts.Dir, opts.SegmentBytes, opts.Floor, opts.Done)
		if err != nil {
			return nil, err
		}
		w.syncFile, w.synced = opts.SyncFile, l.m.Syncs.Inc
		l.wal = w
		l.m.Outstanding.Set(float64(w.outstanding()))
		// Above every completed sequence too: if the log lost records (a
		// damaged or deleted segment), reusing a sequence the caller still
		// records as complete would take a new record for an old one.
		var doneMax uint64
		for seq := range opts.Done {
			doneMax = max(doneMax, seq)
		}
		next = max(next, opts.Floor, lastSeq+1, doneMax+1)
	}
	l.c = newCommitter(l, next)
	// Stopped in reverse: the committer writes what is queued, the syncer
	// syncs what it wrote last, then the retirer stops.
	if l.wal != nil {
		l.lc.start(l.runRetirer, nil)
		if opts.SyncInterval > 0 {
			l.lc.start(l.runSyncer, func() { l.syncErr = l.Sync() })
		}
	}
	l.lc.start(l.c.run, l.c.waitWriter)
	l.wakeRetirer() // segments completed before a restart, and the first spare
	return l, nil
}

// Append writes the records and returns once they are written (and synced,
// unless SyncInterval > 0), with one sequence number per record
// (increasing, never reused). Concurrent calls share one write and one
// sync (group commit).
//
// On error nothing is acknowledged: ErrClosed, ErrOverloaded (too much is
// queued already), a *WriteError, or ctx's error. If ctx ends while the
// write is in flight, Append returns ctx's error although the records may
// still land in the log.
func (l *Log) Append(ctx context.Context, raws [][]byte) ([]uint64, error) {
	if len(raws) == 0 {
		return nil, nil
	}
	r := &appendReq{ctx: ctx, raws: raws, done: make(chan struct{})}
	for _, raw := range raws {
		r.bytes += len(raw)
	}
	return l.c.append(r)
}

// Complete marks records complete: a segment whose records are all
// complete is recycled by the retirer (after Options.Retire). Unknown
// sequences are ignored; each sequence must be completed once.
func (l *Log) Complete(seqs []uint64) {
	if l.mem != nil {
		l.mem.complete(seqs)
	} else if l.wal.complete(seqs) {
		l.wakeRetirer()
	}
	l.m.Outstanding.Set(float64(l.Outstanding()))
}

// Replay calls fn for the records the log holds, oldest first, and stops
// at fn's first error, which it returns. payload is only valid during the
// call. On disk that is every valid record of the live segments, completed
// or not (the log counts completions, it does not keep them: the caller
// skips what it completed); in memory, the records not yet completed. No
// segment is recycled while Replay runs.
func (l *Log) Replay(fn func(seq uint64, payload []byte) error) error {
	if l.mem != nil {
		return l.mem.replay(fn)
	}
	segs := l.wal.beginRead()
	defer func() {
		l.wal.endRead()
		l.wakeRetirer() // segments completed meanwhile
	}()
	var after uint64
	for _, s := range segs {
		var fnErr error
		err := scanSegment(&s, after, func(seq uint64, payload []byte) error {
			after = seq
			fnErr = fn(seq, payload)
			return fnErr
		}, true)
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Sync syncs the segments written since the last sync (the background
// syncer calls it every SyncInterval). After a failure every group syncs
// before its release until the process restarts (so appends fail while
// the disk fails): on Linux a failed sync may have dropped the pages it
// could not write, so a later sync that succeeds proves nothing about
// them; the next group starts a new segment.
func (l *Log) Sync() error {
	if l.wal == nil {
		return nil
	}
	start := time.Now()
	n, err := l.wal.syncDirty()
	if err != nil {
		l.m.SyncErrors.Inc()
		if !l.syncFailed.Swap(true) {
			l.log.Error().Err(err).Str("reason", l.opts.Classify(err)).
				Msg("journal background sync failed: events acknowledged since the previous sync may be lost on power loss; every group is synced before its acknowledgement until restart")
		}
		return err
	}
	if n > 0 {
		l.m.BackgroundSyncSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// runSyncer syncs every SyncInterval.
func (l *Log) runSyncer(quit <-chan struct{}) {
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = l.Sync() // logged there
		case <-quit:
			return
		}
	}
}

// runRetirer recycles complete segments and keeps a spare segment ready,
// off the acknowledgement path.
func (l *Log) runRetirer(quit <-chan struct{}) {
	failing := ""
	for {
		select {
		case <-l.retireWake:
		case <-quit:
			return
		}
		l.wal.closeStale()
		err := l.retire()
		if err == nil {
			err = l.wal.prepareSpare()
		}
		switch {
		case err != nil && l.opts.Classify(err) != failing: // once per kind, not per file name
			failing = l.opts.Classify(err)
			l.m.SegmentErrors.Inc()
			l.log.Warn().Err(err).Msg("journal segment maintenance failed; retrying at the next segment")
		case err == nil && failing != "":
			failing = ""
			l.log.Info().Msg("journal segment maintenance recovered")
		}
	}
}

// retire recycles the segments whose records are all complete, once
// Options.Retire has made their completions durable.
func (l *Log) retire() error {
	segs, floor := l.wal.retirable()
	if len(segs) == 0 {
		return nil
	}
	if l.opts.Retire != nil {
		if err := l.opts.Retire(floor); err != nil {
			return err
		}
	}
	l.wal.retire(segs)
	return nil
}

func (l *Log) wakeRetirer() {
	select {
	case l.retireWake <- struct{}{}:
	default:
	}
}

// Outstanding returns the number of records not yet completed.
func (l *Log) Outstanding() int {
	if l.mem != nil {
		return l.mem.len()
	}
	return l.wal.outstanding()
}

// Usage returns the bytes the segment files occupy (0 in memory).
func (l *Log) Usage() int64 {
	if l.wal == nil {
		return 0
	}
	return l.wal.usage()
}

// Spares returns the number of segment files kept ready for reuse.
func (l *Log) Spares() int {
	if l.wal == nil {
		return 0
	}
	l.wal.mu.Lock()
	defer l.wal.mu.Unlock()
	return len(l.wal.spares)
}

// SegmentInfo describes one live segment file.
type SegmentInfo struct {
	ID          uint64
	Path        string
	End         int64  // offset after the last record written
	First, Last uint64 // sequences held; First == 0 while empty
	Outstanding int    // records not yet completed
}

// Segments describes the live segment files, oldest first (none in
// memory).
func (l *Log) Segments() []SegmentInfo {
	if l.wal == nil {
		return nil
	}
	segs := l.wal.snapshot()
	out := make([]SegmentInfo, len(segs))
	for i, s := range segs {
		out[i] = SegmentInfo{ID: s.id, Path: s.f.Name(), End: s.end, First: s.first, Last: s.last, Outstanding: s.outstanding}
	}
	return out
}

// Close stops the goroutines (queued appends are written first, later ones
// fail with ErrClosed; with SyncInterval > 0 what was written last is
// synced) and closes the files. The first call returns what failed; later
// calls return nil.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.lc.stop()
		err = l.syncErr
		if l.wal != nil {
			err = errors.Join(err, l.wal.closeFiles())
		}
	})
	return err
}
