package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/store/journal"
)

// Append writes the raw Falco JSON events to the journal and returns once
// they are synced to disk, with one sequence number per event (increasing,
// never reused). Concurrent calls share one write and one sync.
//
// On error nothing is acknowledged: an error wrapping scorer.ErrUnavailable
// means the journal cannot persist (disk full, read-only, permission, I/O,
// closed) and the caller should answer 503; scorer.ErrOverloaded means too
// much is already queued. If ctx ends while the write is in flight, Append
// returns ctx's error although the events may still land in the journal:
// they will then be scored once more, which is harmless.
func (d *DB) Append(ctx context.Context, raws [][]byte) ([]uint64, error) {
	for i, raw := range raws {
		if len(raw) > d.cfg.MaxEventBytes {
			return nil, fmt.Errorf("append: event %d is %d bytes, above store.max_event_bytes %d: %w", i, len(raw), d.cfg.MaxEventBytes, scorer.ErrTooLarge)
		}
	}
	seqs, err := d.journal.Append(ctx, raws)
	var werr *journal.WriteError
	switch {
	case err == nil:
		return seqs, nil
	case errors.As(err, &werr):
		return nil, unavailable("append", werr.Err)
	case errors.Is(err, journal.ErrClosed):
		return nil, unavailable("append", ErrClosed)
	case errors.Is(err, journal.ErrOverloaded):
		return nil, fmt.Errorf("append: %w", scorer.ErrOverloaded)
	}
	return nil, fmt.Errorf("append: %w", err) // ctx's
}

// Complete writes the alerts to the outbox and, in the same Badger
// transaction, a done marker for the events (the journal itself is the
// segment files of package journal, which only learn that the events are done): the
// outbox entries become visible exactly when the events stop being pending.
// That holds while the call fits one transaction; see the last paragraph
// for one that does not. An in-memory store writes no marker. Each alert
// gets the next sequence of its sink.
//
// Complete does not sync, by design. A committed Badger transaction is in
// the memtable and its memory-mapped write-ahead log, i.e. in the kernel's
// page cache: a process crash (SIGKILL, OOM kill, panic) cannot lose it.
// Only a power loss or kernel crash can, and then Badger's replay drops the
// torn transaction whole, so the events are still pending in the journal
// (which was synced by Append, and whose segments are recycled only after
// a Badger sync) and are replayed: the alerts are produced again with the
// same ids (duplicates, never losses).
//
// Should a call exceed one transaction (about 4 MB or 20,000 entries), the
// outbox entries are written in several transactions and the done marker
// last, so a crash in between still yields duplicates, not losses.
func (d *DB) Complete(done []uint64, alerts []scorer.OutboxPut) error {
	if len(done) == 0 && len(alerts) == 0 {
		return nil
	}
	if err := checkOutboxPuts(alerts); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if err := d.acquire(); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	defer d.life.RUnlock()
	// Allocation and commit happen under one lock, so that entries of a sink
	// become visible in sequence order and a reader's cursor skips nothing.
	d.outbox.mu.Lock()
	defer d.outbox.mu.Unlock()
	p := d.outbox.allocate(d.now(), alerts)
	sorted, err := d.commitComplete(p, done)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	d.outbox.added(p)
	switch {
	case d.cfg.InMemory:
		d.journal.Complete(done) // no marker: nothing was sorted
	case len(sorted) > 0:
		d.journal.Complete(sorted)
	}
	return nil
}

// commitComplete writes Complete's outbox entries (under their allocated
// seqs), the sinks' high-water marks and then the done marker, and returns
// the done sequences sorted for the journal (nil when no marker is
// written). The outbox's mu must be held.
func (d *DB) commitComplete(p *outboxPut, done []uint64) ([]uint64, error) {
	b := d.newBatch()
	defer b.discard()
	if err := d.outbox.stage(b, p); err != nil {
		return nil, err
	}
	var sorted []uint64
	if len(done) > 0 && !d.cfg.InMemory {
		sorted = slices.Clone(done)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
		d.doneID++
		if err := b.set(doneKey(sorted[len(sorted)-1], d.doneID), encodeDone(sorted)); err != nil {
			return nil, err
		}
	}
	if err := b.commit(); err != nil {
		return nil, err
	}
	return sorted, nil
}

// Replay calls fn for every journal entry not yet completed, oldest first.
// raw is only valid during the call. It stops at fn's first error and
// returns it. Call it before new events arrive: an entry completed while
// Replay runs may still be passed to fn.
func (d *DB) Replay(fn func(seq uint64, raw []byte) error) error {
	if err := d.acquire(); err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	if d.cfg.InMemory { // completed entries are gone, and there are no markers
		d.life.RUnlock()
		return d.journal.Replay(fn)
	}
	floor, done, _, err := d.loadDone()
	d.life.RUnlock()
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	var fnErr error
	err = d.journal.Replay(func(seq uint64, raw []byte) error {
		if _, ok := done[seq]; ok || seq < floor {
			return nil
		}
		fnErr = fn(seq, raw)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	return nil
}

// loadDone reads the journal floor and the done markers above it.
func (d *DB) loadDone() (floor uint64, done map[uint64]struct{}, lastID uint64, err error) {
	done = map[uint64]struct{}{}
	err = d.bdb.View(func(txn *badger.Txn) error {
		var err error
		if floor, err = storedFloor(txn); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{prefixDone}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 17 {
				return fmt.Errorf("done marker key %x: %w", k, errCorrupt)
			}
			lastID = max(lastID, be64(k[9:]))
			err := it.Item().Value(func(v []byte) error {
				return decodeDone(v, func(seq uint64) { done[seq] = struct{}{} })
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return floor, done, lastID, err
}

// retireBelow runs before the journal recycles segments whose events are
// all complete (journal.Options.Retire): their outbox entries are synced
// first, then the new floor, and only then are the done markers below it
// deleted and the files reused: at no point does a crash lose an event or
// replay one whose alerts are durable.
func (d *DB) retireBelow(floor uint64) error {
	if err := d.acquire(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	d.m.syncs.WithLabelValues("badger").Inc()
	if err := d.bdb.Sync(); err != nil {
		return fmt.Errorf("retire journal segments: %w", err)
	}
	err := d.bdb.Update(func(txn *badger.Txn) error { return raiseFloor(txn, floor) })
	if err == nil {
		d.m.syncs.WithLabelValues("badger").Inc()
		err = d.bdb.Sync()
	}
	if err != nil {
		return fmt.Errorf("retire journal segments: %w", err)
	}
	// Markers below a durable floor mean nothing any more.
	for more := true; more; {
		err := d.bdb.Update(func(txn *badger.Txn) error {
			var err error
			more, err = deleteDoneBelow(txn, floor, txnMaxEntries/2)
			return err
		})
		if err != nil {
			return fmt.Errorf("retire journal segments: %w", err)
		}
	}
	return nil
}

// raiseFloor stores floor as the journal floor unless the stored one is
// higher: never lower, since segments reloaded after a restart may start
// below what an earlier retirement already made durable.
func raiseFloor(txn *badger.Txn, floor uint64) error {
	old, err := storedFloor(txn)
	if err != nil {
		return err
	}
	return txn.Set(floorKey(), encodeU64(max(floor, old)))
}

// storedFloor reads the journal floor (0 when none is stored).
func storedFloor(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(floorKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return counterValue(item)
}

// deleteDoneBelow deletes up to limit done markers whose highest sequence
// is below floor, and reports whether it stopped at the limit (more may
// follow).
func deleteDoneBelow(txn *badger.Txn, floor uint64, limit int) (more bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDone}})
	var stale [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != 17 || be64(k[1:9]) >= floor {
			break
		}
		stale = append(stale, it.Item().KeyCopy(nil))
		if len(stale) == limit {
			break
		}
	}
	it.Close()
	for _, k := range stale {
		if err := txn.Delete(k); err != nil {
			return false, err
		}
	}
	return len(stale) == limit, nil
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
