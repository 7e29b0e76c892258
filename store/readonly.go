package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// ErrInUse is returned by OpenReadOnly when another process holds the data
// directory for writing: Badger's directory lock is exclusive while the
// service runs, so an operator reads through its admin API instead.
var ErrInUse = errors.New("data directory in use by another process")

// ErrNeedsRecovery is returned by OpenReadOnly for a store that was not
// closed cleanly (the service was killed): Badger must replay and truncate
// its memtable log before the data can be read, which writes.
var ErrNeedsRecovery = errors.New("store not closed cleanly")

// OpenReadOnly opens the store in dir for reading baselines (Images, Image,
// Export) without writing a byte: Badger in read-only mode, no journal, no
// background goroutines. Readers share the directory with each other but
// not with the service (which then cannot start until they close), and a
// store left by a killed service needs one start of the service first.
// Writes fail; Close releases the directory.
func OpenReadOnly(dir string, log zerolog.Logger) (*DB, error) {
	fail := func(format string, a ...any) (*DB, error) {
		return nil, fmt.Errorf("open store %s read-only: "+format, append([]any{dir}, a...)...)
	}
	if _, err := os.Stat(dir); err != nil {
		return fail("%w", err)
	}
	// Badger would say "no manifest found, required for read-only db".
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, os.ErrNotExist) {
		return fail("no falco-scorer store in this directory")
	} else if err != nil {
		return fail("%w", err)
	}
	cfg := DefaultConfig()
	cfg.Dir = dir
	log = log.With().Str("component", "store").Logger()
	bdb, err := badger.Open(badgerOptions(cfg, log).WithReadOnly(true))
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "Another process is using this Badger database"):
		return fail("%w (a running falco-scorer? read through its admin API, /api/v1/baselines): %w", ErrInUse, err)
	case errors.Is(err, badger.ErrTruncateNeeded) || strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()):
		return fail("%w: start falco-scorer once (it recovers and closes the store) and stop it, then read again: %w", ErrNeedsRecovery, err)
	default:
		return fail("%w", err)
	}
	m, err := newMetrics(nil)
	if err != nil {
		return nil, errors.Join(err, bdb.Close())
	}
	d := &DB{
		handle: handle{bdb: bdb}, cfg: cfg, log: log, m: m,
		now: time.Now, diskFree: diskFree,
		readOnly: true,
	}
	d.outbox = newOutbox(&d.handle, log, d.clock, m, cfg.MaxOutboxEntries)
	d.baselines = newBaselines(&d.handle, log, d.clock, m.flushSeconds)
	if err := d.checkFormatReadOnly(); err != nil {
		return nil, errors.Join(err, bdb.Close())
	}
	return d, nil
}

// checkFormatReadOnly is checkFormat without its writes: an empty store
// has no format record yet, a format-1 store needs the upgrade that the
// service performs at start; a formatReadAsIs store is read as it is.
func (d *DB) checkFormatReadOnly() error {
	return d.bdb.View(func(txn *badger.Txn) error {
		got, empty, err := d.storedFormat(txn, " read-only")
		if err != nil || empty {
			return err
		}
		if got != FormatVersion && got != formatReadAsIs {
			return fmt.Errorf("open store %s read-only: format version %d, this build reads %d (start this release's falco-scorer once to upgrade it)", d.cfg.Dir, got, FormatVersion)
		}
		return nil
	})
}

// closeReadOnly waits for running reads and closes Badger, which releases
// the shared directory lock. Safe to call twice.
func (d *DB) closeReadOnly() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.bdb.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
