package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/store/journal"
)

// DB is falco-scorer's durable state in one data directory: the journal
// (segment files) and, in Badger, the per-sink outbox and dead letters and
// the per-image baselines. It
// implements scorer.Journal, scorer.Outbox and scorer.Baselines. All methods
// are safe for concurrent use.
type DB struct {
	handle // Badger and its lifetime guard, shared with the parts below
	cfg    Config
	log    zerolog.Logger
	m      *metrics

	// Injected in tests.
	now      func() time.Time
	diskFree func(dir string) (uint64, error)
	noSync   bool // benchmarks only: measure the cost of the sync

	journal  *journal.Log           // the journal's segment files, or its in-memory records
	syncFile func(f *os.File) error // tests: replaces the journal's fdatasync
	doneID   uint64                 // last done marker id; guarded by the outbox's mu (Complete)

	*outbox    // the per-sink outbox and dead letters (outbox.go)
	*baselines // the per-image baselines (baselines.go, export.go)

	maintMu sync.Mutex // one maintenance pass at a time

	readOnly bool // OpenReadOnly: Badger only, no journal, no goroutines
}

// Open opens (creating if needed) the store in cfg.Dir, checks the format
// version, recovers the sequence counters and opens the journal (which
// starts its goroutines).
// reg may be nil (no metrics exported). Call Close when done.
func Open(cfg Config, log zerolog.Logger, reg prometheus.Registerer) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	log = log.With().Str("component", "store").Logger()
	opts := badgerOptions(cfg, log)
	if cfg.InMemory {
		opts.Dir, opts.ValueDir = "", ""
	} else if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Dir, err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	bdb, err := badger.Open(opts)
	if err != nil && !cfg.InMemory && emptyMemtableError(err) {
		// Killed between creating its next memtable file and sizing it,
		// Badger refuses to open again. It held the directory lock when it
		// said so (no other process is using the store), and a blank
		// memtable file holds nothing. The failed open usually removes the
		// file itself (removeBlankMemtable removes it if not), and a second
		// open succeeds.
		removeBlankMemtable(cfg.Dir, err, log)
		log.Warn().Err(err).Msg("store: a blank memtable file left by a kill; opening again")
		bdb, err = badger.Open(opts)
	}
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("open store %s: directory in use by another process (a running falco-scorer? use its admin API): %w", cfg.Dir, err)
		}
		return nil, fmt.Errorf("open store %s: %w", cfg.Dir, err)
	}
	d := &DB{
		handle: handle{bdb: bdb}, cfg: cfg, log: log, m: m,
		now: time.Now, diskFree: diskFree,
	}
	d.outbox = newOutbox(&d.handle, log, d.clock, m, cfg.MaxOutboxEntries)
	d.baselines = newBaselines(&d.handle, log, d.clock, m.flushSeconds)
	if err := d.checkFormat(); err != nil {
		return nil, errors.Join(err, bdb.Close())
	}
	journalNext, err := d.recover()
	if err == nil {
		err = d.openJournal(journalNext)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", cfg.Dir, err), bdb.Close())
	}
	return d, nil
}

// clock reads d.now, which tests replace after Open; the store's parts
// hold this method value rather than a copy of the function.
func (d *DB) clock() time.Time { return d.now() }

// badgerOptions are Badger's options for a store in cfg.Dir, shared by
// Open and OpenReadOnly (which must read the files Open's options wrote).
func badgerOptions(cfg Config, log zerolog.Logger) badger.Options {
	return badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(false). // Badger is synced only before a journal segment is recycled
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false). // Badger's expvar metrics are process-global
		// Sized for a sidecar, not a database server. Alert payloads (the
		// outbox's values, ~1-2 KB, short-lived) go to the value log, so
		// the LSM holds small pointers: memtables flush and compact far
		// less often, and each flush grows one of Badger's pooled table
		// builders (~4x a memtable) less. Under overload the anonymous
		// memory stayed flat at ~250 MiB instead of ~1.2 GiB. The value
		// log's space is reclaimed by GC once compactions have counted the
		// deleted entries; small memtables make that happen soon: with
		// 8 MiB ones the value log levelled off near 0.5 GB under a
		// sustained put/delete stream, with 32 MiB ones it had not
		// levelled off at 0.7 GB.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(16 << 20).
		WithValueThreshold(256).
		WithValueLogFileSize(32 << 20)
}

// openJournal opens the journal's segment files (or the in-memory
// journal), starting its sequences at next or above, and its goroutines.
// The store's side of the journal is the done markers and the floor in
// Badger: read here, written by Complete and by retireBelow before the
// journal recycles a segment.
func (d *DB) openJournal(next uint64) error {
	opts := journal.Options{
		Dir:                  filepath.Join(d.cfg.Dir, walDirName),
		InMemory:             d.cfg.InMemory,
		SegmentBytes:         d.cfg.JournalSegmentBytes,
		GroupCommitMaxDelay:  d.cfg.GroupCommitMaxDelay,
		GroupCommitMaxEvents: d.cfg.GroupCommitMaxEvents,
		GroupCommitMaxBytes:  d.cfg.GroupCommitMaxBytes,
		SyncInterval:         d.cfg.JournalSyncInterval,
		MinFreeBytes:         d.cfg.MinFreeBytes,
		DiskDir:              d.cfg.Dir,
		DiskFree:             func(dir string) (uint64, error) { return d.diskFree(dir) },
		SyncFile:             d.syncJournalFile(benchSyncDelay()),
		Next:                 next,
		Retire:               d.retireBelow,
		Classify:             classify,
		Logger:               d.log,
		Metrics:              d.m.journal(),
	}
	if !d.cfg.InMemory {
		floor, done, lastID, err := d.loadDone()
		if err != nil {
			return fmt.Errorf("read journal markers: %w", err)
		}
		d.doneID = lastID
		opts.Floor, opts.Done = floor, done
	}
	jl, err := journal.Open(opts)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	d.journal = jl
	return nil
}

// walDirName is the journal's directory below the data directory.
const walDirName = "journal"

// syncJournalFile returns the journal's fdatasync, with the test hooks:
// none at all (d.noSync), another one (d.syncFile), or a delay before it
// (benchmarks built with -tags falcobench).
func (d *DB) syncJournalFile(delay time.Duration) func(*os.File) error {
	return func(f *os.File) error {
		switch {
		case d.noSync:
			return nil
		case d.syncFile != nil:
			return d.syncFile(f)
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		return journal.DataSync(f)
	}
}

// checkFormat writes the format record into an empty store and refuses a
// store written with another layout.
func (d *DB) checkFormat() error {
	return d.bdb.Update(func(txn *badger.Txn) error {
		got, empty, err := d.storedFormat(txn, "")
		if err != nil {
			return err
		}
		if empty {
			return txn.Set(formatKey(), u32(FormatVersion))
		}
		switch got {
		case 1:
			return d.upgradeFormat1(txn)
		case 2: // format 3 only adds compressed outbox values
			d.log.Info().Msg("upgrading store format 2 to 3 (outbox payloads compressed from now on)")
			return txn.Set(formatKey(), u32(FormatVersion))
		}
		if got != FormatVersion {
			return fmt.Errorf("open store %s: format version %d, this build reads %d", d.cfg.Dir, got, FormatVersion)
		}
		return nil
	})
}

// storedFormat reads the store's format version, or reports an empty store
// (no record, no data). A non-empty store without a record, or a malformed
// record, is an error; how names the opening ("" or " read-only") in its
// text.
func (d *DB) storedFormat(txn *badger.Txn, how string) (version uint32, empty bool, err error) {
	item, err := txn.Get(formatKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		blank := !it.Valid()
		it.Close()
		if !blank {
			return 0, false, fmt.Errorf("open store %s%s: no format record in a non-empty directory (not a falco-scorer store?)", d.cfg.Dir, how)
		}
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read format record: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, false, fmt.Errorf("read format record: %w", err)
	}
	if len(v) != 4 {
		return 0, false, fmt.Errorf("open store %s%s: format record: %w", d.cfg.Dir, how, errCorrupt)
	}
	return uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]), false, nil
}

// upgradeFormat1 upgrades a format-1 store, whose journal lived in Badger,
// when that journal is empty (the service drains it on a clean stop).
// Pending format-1 entries are refused rather than converted: the previous
// release scores them when it starts again.
func (d *DB) upgradeFormat1(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixJournal}})
	it.Rewind()
	pending := it.Valid()
	it.Close()
	if pending {
		return fmt.Errorf("open store %s: format 1 store with unprocessed journal entries; start the previous release once to drain them, then this one", d.cfg.Dir)
	}
	d.log.Info().Msg("upgrading store format 1 to 3 (journal moved to segment files)")
	return txn.Set(formatKey(), u32(FormatVersion))
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// recover reads the sequence high-water marks and the keys they guard, and
// resumes above both. Writers store the high-water mark (reserving every
// sequence they are about to use) in the first transaction of a write, so
// sequences never repeat across restarts. It also initializes the gauges.
func (d *DB) recover() (journalNext uint64, err error) {
	journalNext = 1
	err = d.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
	scan:
		for it.Seek([]byte{prefixJournalSeq}); it.Valid(); it.Next() {
			k := it.Item().Key()
			switch k[0] {
			case prefixJournalSeq: // format 1's mark: sequences continue above it
				n, err := counterValue(it.Item())
				if err != nil {
					return err
				}
				journalNext = max(journalNext, n)
			case prefixOutbox, prefixDead, prefixOutboxSeq:
				if err := d.outbox.recoverKey(it.Item()); err != nil {
					return err
				}
			default:
				break scan // baselines follow; not needed here
			}
		}
		return d.baselines.loadFlushNext(txn)
	})
	d.outbox.recovered()
	return journalNext, err
}

func counterValue(item *badger.Item) (uint64, error) {
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	return decodeU64(v)
}

func be64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// Close closes the journal (appends already queued are written first and,
// with journal_sync_interval, synced; later ones fail with ErrClosed),
// waits for running operations and a running maintenance pass, and closes
// Badger. It is safe to call twice.
func (d *DB) Close() error {
	if d.readOnly {
		return d.closeReadOnly()
	}
	journalErr := d.journal.Close() // appends queued are written, then synced
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := errors.Join(journalErr, d.bdb.Close()); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Run performs maintenance every GCInterval until ctx is cancelled: value-log
// GC until Badger has nothing to rewrite, expiry of old buckets and idle
// images, and the disk and queue gauges. It returns nil when ctx is
// cancelled; maintenance failures are logged and counted, never fatal.
func (d *DB) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.GCInterval)
	defer t.Stop()
	// The value log takes every alert payload: at thousands of alerts a
	// second, waiting gc_interval between GCs would let it grow by GBs.
	// A GC with nothing to rewrite returns at once.
	vt := time.NewTicker(min(d.cfg.GCInterval, valueLogGCInterval))
	defer vt.Stop()
	d.Maintain(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.Maintain(ctx)
		case <-vt.C:
			d.maintainValueLog(ctx)
		}
	}
}

// valueLogGCInterval is the longest time between value-log GCs.
const valueLogGCInterval = 15 * time.Second

func (d *DB) maintainValueLog(ctx context.Context) {
	if d.cfg.InMemory {
		return
	}
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	if err := d.acquire(); err != nil {
		return
	}
	defer d.life.RUnlock()
	d.valueLogGC(ctx)
}

// Maintain runs one maintenance pass now (Run calls it periodically).
func (d *DB) Maintain(ctx context.Context) {
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	if err := d.acquire(); err != nil {
		return
	}
	defer d.life.RUnlock()
	now := d.now()
	if d.cfg.BucketRetention > 0 {
		n, err := d.dropBucketsBefore(now.Add(-d.cfg.BucketRetention))
		d.m.expiredBuckets.Add(float64(n))
		if err != nil {
			d.m.maintErrors.WithLabelValues("expire_buckets").Inc()
			d.log.Warn().Err(err).Msg("expire buckets")
		}
	}
	if d.cfg.ImageTTL > 0 {
		n, err := d.dropIdleImages(now.Add(-d.cfg.ImageTTL))
		d.m.expiredImages.Add(float64(n))
		if err != nil {
			d.m.maintErrors.WithLabelValues("expire_images").Inc()
			d.log.Warn().Err(err).Msg("expire idle images")
		} else if n > 0 {
			d.log.Info().Int("images", n).Dur("image_ttl", d.cfg.ImageTTL).Msg("dropped idle images")
		}
	}
	if err := d.recount(); err != nil {
		d.m.maintErrors.WithLabelValues("recount").Inc()
		d.log.Warn().Err(err).Msg("recount queues")
	}
	if !d.cfg.InMemory {
		d.valueLogGC(ctx)
		if usage, err := dirUsage(d.cfg.Dir); err == nil {
			for kind, n := range usage {
				d.m.diskBytes.WithLabelValues(kind).Set(float64(n))
			}
			d.m.diskBytes.WithLabelValues("journal").Set(float64(d.journal.Usage()))
		}
		if free, err := d.diskFree(d.cfg.Dir); err == nil {
			d.m.diskFree.Set(float64(free))
		}
	}
}

// recount resets the queue gauges from a keys-only scan (outbox.recount)
// and the journal's.
func (d *DB) recount() error {
	if err := d.outbox.recount(); err != nil {
		return err
	}
	d.m.journalEntries.Set(float64(d.journal.Outstanding()))
	return nil
}

// dirUsage sums the bytes allocated to Badger's files by kind: "lsm"
// (tables), "vlog" (value log), "wal" (memtable logs) and "other".
// Badger's own Size is refreshed only once a minute.
func dirUsage(dir string) (map[string]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	usage := map[string]int64{"lsm": 0, "vlog": 0, "wal": 0, "other": 0}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue
		}
		kind := "other"
		switch filepath.Ext(e.Name()) {
		case ".sst":
			kind = "lsm"
		case ".vlog":
			kind = "vlog"
		case ".mem":
			kind = "wal"
		}
		usage[kind] += allocated(fi)
	}
	return usage, nil
}

// valueLogGC rewrites value-log files until Badger reports nothing left to
// rewrite (bounded, so a pass always ends).
func (d *DB) valueLogGC(ctx context.Context) {
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		err := d.bdb.RunValueLogGC(d.cfg.GCDiscardRatio)
		switch {
		case err == nil:
			d.m.gcRuns.WithLabelValues("rewrite").Inc()
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			d.m.gcRuns.WithLabelValues("no_rewrite").Inc()
		default:
			d.m.gcRuns.WithLabelValues("error").Inc()
			d.log.Warn().Err(err).Msg("value log gc")
		}
		return
	}
}

// badgerLogger sends Badger's log lines to zerolog. Badger's info lines are
// routine (compactions, replays) and go to debug.
type badgerLogger struct{ log zerolog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error().Str("detail", strings.TrimSpace(fmt.Sprintf(f, a...))).Msg("badger")
}

func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn().Str("detail", strings.TrimSpace(fmt.Sprintf(f, a...))).Msg("badger")
}

func (l badgerLogger) Infof(f string, a ...any) {
	l.log.Debug().Str("detail", strings.TrimSpace(fmt.Sprintf(f, a...))).Msg("badger")
}

func (l badgerLogger) Debugf(f string, a ...any) {
	if e := l.log.Trace(); e.Enabled() {
		e.Str("detail", strings.TrimSpace(fmt.Sprintf(f, a...))).Msg("badger")
	}
}

// emptyMemtableError reports Badger's refusal to open a memtable file that
// exists but is empty (ristretto's "Create a new file").
func emptyMemtableError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "while opening memtables") && strings.Contains(msg, "Create a new file")
}

// removeBlankMemtable deletes the memtable file Badger named in err when
// it holds nothing: empty, or only zeros (Badger sizes the empty file before
// it refuses it, so a second attempt finds it sized and still blank). It
// reports whether it deleted one.
func removeBlankMemtable(dir string, err error, log zerolog.Logger) bool {
	m := memtableFidRE.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	fid, _ := strconv.Atoi(m[1])
	name := filepath.Join(dir, fmt.Sprintf("%05d.mem", fid))
	b, rerr := os.ReadFile(name)
	if rerr != nil {
		return false
	}
	for _, c := range b {
		if c != 0 {
			return false // it holds entries: not ours to delete
		}
	}
	if os.Remove(name) != nil {
		return false
	}
	log.Warn().Str("file", name).Msg("removed a blank memtable file left by a kill")
	return true
}

var memtableFidRE = regexp.MustCompile(`while opening fid: (\d+)`)
