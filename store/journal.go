package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// maxQueuedBytes bounds the events waiting for the committer; beyond it
// Append answers scorer.ErrOverloaded instead of growing memory.
const maxQueuedBytes = 64 << 20

// appendReq is one Append call waiting for its group commit.
type appendReq struct {
	ctx   context.Context
	raws  [][]byte
	bytes int
	seqs  []uint64
	err   error
	done  chan struct{}
}

// committer writes journal entries, one writer at a time (wmu). Append
// queues a request; the committer goroutine takes everything queued (up to
// the group limits), writes it with one pwrite, syncs once (strict mode),
// and releases all callers. Requests queue while a write runs, so groups
// grow with load by themselves. A lone appender (nothing queued, no write
// running, the last group a single call) writes its own group instead: that
// saves two goroutine hand-offs on the acknowledgement path of one Falco,
// which sends one event and waits for the answer (they were ~a third of
// the ingest latency at one connection with the background sync).
type committer struct {
	d *DB

	// wmu is held by whoever writes a group (the committer goroutine or a
	// lone appender); it orders sequences and segment writes, and guards
	// the fields below "Owned by the writer".
	wmu sync.Mutex

	mu          sync.Mutex
	queue       []*appendReq
	queuedBytes int
	stopped     bool
	lastGroup   int // Append calls in the latest group

	wake   chan struct{} // capacity 1: "the queue is not empty"
	quit   chan struct{} // closed by stop
	exited chan struct{}
	once   sync.Once

	// Owned by the writer (wmu).
	next    uint64   // next journal sequence
	failing string   // reason of the current failure, "" while healthy
	raws    [][]byte // reused group buffer

	// The free-space guard's latest reading (see checkFree).
	freeAt       time.Time
	freeBytes    uint64
	writtenSince int64 // journal bytes written since freeAt
}

// A statfs per group commit cost ~5 µs, 3 % of the service's CPU when
// groups are small; the guard reads the free space again only after this
// long or this many journal bytes, and at every group while it is low.
const (
	freeCheckInterval = 100 * time.Millisecond
	freeCheckBytes    = 1 << 20
)

func newCommitter(d *DB, next uint64) *committer {
	return &committer{d: d, next: next, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), exited: make(chan struct{})}
}

// stop makes later Appends fail, writes what is queued and waits for the
// committer goroutine to return.
func (c *committer) stop() {
	c.once.Do(func() {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
		close(c.quit)
	})
	<-c.exited
	c.wmu.Lock()
	defer c.wmu.Unlock() // a lone appender may still be writing its own group
}

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
	if len(raws) == 0 {
		return nil, nil
	}
	r := &appendReq{ctx: ctx, raws: raws, done: make(chan struct{})}
	for i, raw := range raws {
		if len(raw) > d.cfg.MaxEventBytes {
			return nil, fmt.Errorf("append: event %d is %d bytes, above store.max_event_bytes %d: %w", i, len(raw), d.cfg.MaxEventBytes, scorer.ErrTooLarge)
		}
		r.bytes += len(raw)
	}
	c := d.jc
	c.mu.Lock()
	switch {
	case c.stopped:
		c.mu.Unlock()
		d.m.appendErrors.WithLabelValues(reasonClosed).Add(float64(len(raws)))
		return nil, unavailable("append", ErrClosed)
	case c.queuedBytes+r.bytes > maxQueuedBytes && len(c.queue) > 0:
		c.mu.Unlock()
		return nil, fmt.Errorf("append: %w", scorer.ErrOverloaded)
	}
	if len(c.queue) == 0 && c.lastGroup <= 1 && c.wmu.TryLock() {
		// Alone: write the group here, without waking the committer.
		c.lastGroup = 1
		c.mu.Unlock()
		c.commit([]*appendReq{r})
		c.wmu.Unlock()
		c.mu.Lock()
		more := len(c.queue) > 0
		c.mu.Unlock()
		if more { // queued behind this write: the committer takes them
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		return r.seqs, r.err
	}
	c.queue = append(c.queue, r)
	c.queuedBytes += r.bytes
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.seqs, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("append: %w", ctx.Err())
	}
}

func (c *committer) run() {
	defer close(c.exited)
	for {
		select {
		case <-c.wake:
		case <-c.quit:
			for c.commitQueued() {
			}
			return
		}
		// Linger only when appends are concurrent (the last group had
		// several): a lone appender gains nothing from waiting.
		c.mu.Lock()
		last := c.lastGroup
		c.mu.Unlock()
		if delay := c.d.cfg.GroupCommitMaxDelay; delay > 0 && last > 1 {
			c.linger(delay, last)
		}
		for c.commitQueued() {
		}
	}
}

// linger waits up to delay for as many appenders as the last group had
// (the callers it released usually come back with their next events), or
// for a whole group. Waiting for the expected callers rather than for the
// delay matters: the Go runtime rounds a sub-millisecond timer up to about
// 1 ms when the process is otherwise idle, so a fixed 150 µs linger took
// ~1.1 ms and halved the rate of 2 to 4 concurrent senders.
func (c *committer) linger(delay time.Duration, expected int) {
	deadline := time.NewTimer(delay)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		full := len(c.queue) >= expected || len(c.queue) >= c.d.cfg.GroupCommitMaxEvents || c.queuedBytes >= c.d.cfg.GroupCommitMaxBytes
		c.mu.Unlock()
		if full {
			return
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			return
		case <-c.quit:
			return
		}
	}
}

// commitQueued commits one group from the head of the queue and reports
// whether requests remain.
func (c *committer) commitQueued() bool {
	cfg := c.d.cfg
	// Taken before the group, so that a lone appender's write (which
	// holds it) lands first and the group is formed after it.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	var n, events, bytes int
	for n < len(c.queue) {
		r := c.queue[n]
		if n > 0 && (events+len(r.raws) > cfg.GroupCommitMaxEvents || bytes+r.bytes > cfg.GroupCommitMaxBytes) {
			break
		}
		events += len(r.raws)
		bytes += r.bytes
		n++
	}
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.lastGroup = n
	c.queuedBytes -= bytes
	more := len(c.queue) > 0
	c.mu.Unlock()
	if n > 0 {
		c.commit(group)
	}
	return more
}

func (c *committer) commit(group []*appendReq) {
	d := c.d
	live := group[:0]
	var events int
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("append: %w", err)
			close(r.done)
			continue
		}
		live = append(live, r)
		events += len(r.raws)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	err := c.write(live, events)
	if err != nil {
		reason := classify(err)
		err = unavailable("append", err)
		d.m.appendErrors.WithLabelValues(reason).Add(float64(events))
		d.m.unavailable.Set(1)
		if c.failing != reason {
			// Logged once per kind of failure, not per event.
			d.log.Error().Err(err).Str("reason", reason).Str("dir", d.cfg.Dir).
				Msg("journal cannot persist events; ingest answers 503 until this clears")
			c.failing = reason
		}
		for _, r := range live {
			r.err = err
			close(r.done)
		}
		return
	}
	if c.failing != "" {
		d.log.Info().Str("previous_reason", c.failing).Msg("journal writes recovered")
		c.failing = ""
		d.m.unavailable.Set(0)
	}
	d.m.batches.Inc()
	d.m.batchEvents.Observe(float64(events))
	d.m.syncSeconds.Observe(time.Since(start).Seconds())
	d.m.appendedEvents.Add(float64(events))
	d.m.journalEntries.Add(float64(events))
	for _, r := range live {
		close(r.done)
	}
}

// write appends the group's events to the journal's active segment and
// syncs it (one write, one fdatasync). Sequences are numbered by the
// committer and never reused, even when the write fails.
func (c *committer) write(group []*appendReq, events int) error {
	d := c.d
	if !d.cfg.InMemory && d.cfg.MinFreeBytes > 0 {
		size := 0
		for _, r := range group {
			size += r.bytes
		}
		if err := c.checkFree(size); err != nil {
			return err
		}
	}
	first := c.next
	c.next += uint64(events)
	raws := c.raws[:0]
	for _, r := range group {
		r.seqs = make([]uint64, len(r.raws))
		for i := range r.raws {
			r.seqs[i] = first + uint64(len(raws)+i)
		}
		raws = append(raws, r.raws...)
	}
	defer func() {
		clear(raws) // do not keep the group's events alive
		c.raws = raws[:0]
	}()
	if d.mem != nil {
		d.mem.add(first, raws)
		return nil
	}
	// With journal_sync_interval the background syncer makes the group
	// durable later; once it failed, groups sync here (syncJournal).
	sync := !d.noSync && (d.cfg.JournalSyncInterval == 0 || d.syncFailed.Load())
	rotated, err := d.wal.appendGroup(raws, first, sync)
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if rotated {
		d.wakeRetirer() // a spare was used: prepare the next one
	}
	return nil
}

// checkFree refuses a group of n bytes while the file system holding the
// data directory has less than min_free_bytes free.
func (c *committer) checkFree(n int) error {
	d := c.d
	need := uint64(d.cfg.MinFreeBytes)
	now := time.Now()
	if c.freeAt.IsZero() || c.freeBytes < need || now.Sub(c.freeAt) >= freeCheckInterval || c.writtenSince+int64(n) >= freeCheckBytes {
		free, err := d.diskFree(d.cfg.Dir)
		if err != nil {
			// Not fatal here: the write itself will tell. Read again next time.
			c.freeAt = time.Time{}
			return nil
		}
		c.freeAt, c.freeBytes, c.writtenSince = now, free, 0
	}
	if c.freeBytes < need {
		return fmt.Errorf("%w: %d bytes free in %s, need %d", errLowDisk, c.freeBytes, d.cfg.Dir, need)
	}
	c.writtenSince += int64(n)
	return nil
}

// Complete writes the alerts to the outbox and, in the same Badger
// transaction, a done marker for the events (the journal itself is the
// segment files of wal.go, which only learn that the events are done): the
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
	d.outMu.Lock()
	defer d.outMu.Unlock()
	now := d.now()
	seqs := make([]uint64, len(alerts))
	added := map[string]int64{}
	for i, a := range alerts {
		seqs[i] = d.nextOutbox(a.Sink)
		added[a.Sink]++
	}
	sorted, err := d.commitComplete(now, done, alerts, seqs, added)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	d.completed(now, done, sorted, alerts, seqs, added)
	return nil
}

// checkOutboxPuts refuses what the outbox's keys and values cannot hold.
func checkOutboxPuts(alerts []scorer.OutboxPut) error {
	for _, a := range alerts {
		if err := checkSink(a.Sink); err != nil {
			return err
		}
		if len(a.AlertID) > maxIDLen {
			return fmt.Errorf("alert id of %d bytes exceeds %d", len(a.AlertID), maxIDLen)
		}
	}
	return nil
}

// commitComplete writes Complete's outbox entries (under their allocated
// seqs), the sinks' high-water marks and then the done marker, and returns
// the done sequences sorted for the journal (nil when no marker is
// written). outMu must be held.
func (d *DB) commitComplete(now time.Time, done []uint64, alerts []scorer.OutboxPut, seqs []uint64, added map[string]int64) ([]uint64, error) {
	b := d.newBatch()
	defer b.discard()
	for sink := range added {
		if err := b.set(outboxSeqKey(sink), encodeU64(d.outNext[sink])); err != nil {
			return nil, err
		}
	}
	for i, a := range alerts {
		if err := b.set(outboxKey(a.Sink, seqs[i]), encodeOutbox(now, a.AlertID, a.Payload)); err != nil {
			return nil, err
		}
	}
	var sorted []uint64
	if len(done) > 0 && d.wal != nil {
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

// completed updates what Complete's commit changed in memory: the outbox
// gauges and recent entries, and the journal's pending set. outMu must be
// held.
func (d *DB) completed(now time.Time, done, sorted []uint64, alerts []scorer.OutboxPut, seqs []uint64, added map[string]int64) {
	for sink, n := range added {
		d.pending[sink] += n
		d.m.pending.WithLabelValues(sink).Set(float64(d.pending[sink]))
	}
	d.updateBacklog()
	for i, a := range alerts {
		r := d.recent[a.Sink]
		if r == nil {
			r = &recentRing{}
			d.recent[a.Sink] = r
		}
		r.add(scorer.OutboxEntry{Sink: a.Sink, Seq: seqs[i], AlertID: a.AlertID, Payload: a.Payload, Enqueued: nanosTime(timeNanos(now)), Header: a.Header})
	}
	switch {
	case d.mem != nil:
		d.mem.complete(done)
	case len(sorted) > 0:
		if d.wal.complete(sorted) {
			d.wakeRetirer()
		}
	}
	d.m.journalEntries.Set(float64(d.journalOutstanding()))
}

// nextOutbox allocates the next sequence of sink; outMu must be held.
func (d *DB) nextOutbox(sink string) uint64 {
	seq := max(d.outNext[sink], 1)
	d.outNext[sink] = seq + 1
	return seq
}

// Replay calls fn for every journal entry not yet completed, oldest first.
// raw is only valid during the call. It stops at fn's first error and
// returns it. Call it before new events arrive: an entry completed while
// Replay runs may still be passed to fn.
func (d *DB) Replay(fn func(seq uint64, raw []byte) error) error {
	if err := d.acquire(); err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	if d.mem != nil {
		d.life.RUnlock()
		return d.mem.replay(fn)
	}
	floor, done, _, err := d.loadDone()
	d.life.RUnlock()
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	segs := d.wal.beginRead()
	defer func() {
		d.wal.endRead()
		d.wakeRetirer() // segments completed meanwhile
	}()
	var after uint64
	for _, s := range segs {
		var fnErr error
		err := scanSegment(&s, after, func(seq uint64, raw []byte) error {
			after = seq
			if _, ok := done[seq]; ok || seq < floor {
				return nil
			}
			fnErr = fn(seq, raw)
			return fnErr
		}, true)
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
	}
	return nil
}

// loadDone reads the journal floor and the done markers above it.
func (d *DB) loadDone() (floor uint64, done map[uint64]struct{}, lastID uint64, err error) {
	done = map[uint64]struct{}{}
	err = d.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(floorKey())
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if floor, err = counterValue(item); err != nil {
				return err
			}
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

// retireSegments recycles the journal segments whose events are all
// complete. Their outbox entries are synced first, then the new floor, and
// only then are the done markers below it deleted and the files reused: at
// no point does a crash lose an event or replay one whose alerts are
// durable.
func (d *DB) retireSegments() error {
	segs, floor := d.wal.retirable()
	if len(segs) == 0 {
		return nil
	}
	if err := d.acquire(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	d.m.syncs.WithLabelValues("badger").Inc()
	if err := d.bdb.Sync(); err != nil {
		return fmt.Errorf("retire journal segments: %w", err)
	}
	err := d.bdb.Update(func(txn *badger.Txn) error {
		// Never lower: segments reloaded after a restart may start below
		// what an earlier retirement already made durable.
		item, err := txn.Get(floorKey())
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			old, err := counterValue(item)
			if err != nil {
				return err
			}
			floor = max(floor, old)
		}
		return txn.Set(floorKey(), encodeU64(floor))
	})
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
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDone}})
			var stale [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				if len(k) != 17 || be64(k[1:9]) >= floor {
					break
				}
				stale = append(stale, it.Item().KeyCopy(nil))
				if len(stale) == txnMaxEntries/2 {
					break
				}
			}
			it.Close()
			more = len(stale) == txnMaxEntries/2
			for _, k := range stale {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("retire journal segments: %w", err)
		}
	}
	d.wal.retire(segs)
	return nil
}

// view runs fn in a read transaction unless the DB is closed.
func (d *DB) view(fn func(txn *badger.Txn) error) error {
	if err := d.acquire(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	return d.bdb.View(fn)
}

// memJournal is the journal of an in-memory store: entries live until they
// are completed, and nothing survives Close.
type memJournal struct {
	mu      sync.Mutex
	entries map[uint64][]byte
}

func (j *memJournal) add(first uint64, raws [][]byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, raw := range raws {
		j.entries[first+uint64(i)] = raw
	}
}

func (j *memJournal) complete(seqs []uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range seqs {
		delete(j.entries, s)
	}
}

func (j *memJournal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

func (j *memJournal) replay(fn func(seq uint64, raw []byte) error) error {
	j.mu.Lock()
	seqs := slices.Sorted(maps.Keys(j.entries))
	raws := make([][]byte, len(seqs))
	for i, s := range seqs {
		raws[i] = j.entries[s]
	}
	j.mu.Unlock()
	for i, s := range seqs {
		if err := fn(s, raws[i]); err != nil {
			return err
		}
	}
	return nil
}
