package store

import (
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
	bdb, err := openBadger(cfg, opts, log)
	if err != nil {
		return nil, err
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

// openBadger opens Badger for Open, getting past the one crash window
// that would refuse every restart, and names a directory held by another
// process.
func openBadger(cfg Config, opts badger.Options, log zerolog.Logger) (*badger.DB, error) {
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
	return bdb, nil
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
