package store

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// DeadLetter is an outbox entry that could not be delivered.
type DeadLetter struct {
	scorer.OutboxEntry
	Reason string    `json:"reason"`
	DeadAt time.Time `json:"dead_at"`
}

// Pending returns up to limit entries of sink with Seq > after, in Seq
// order. Entries are committed in sequence order, so a reader that keeps the
// last Seq it saw as its cursor misses none.
func (d *DB) Pending(sink string, after uint64, limit int) ([]scorer.OutboxEntry, error) {
	if err := checkSink(sink); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	// Not from memory once closed. Released before the read below, which
	// takes it again (a nested read lock could deadlock with Close).
	if err := d.acquire(); err != nil {
		return nil, fmt.Errorf("outbox pending %s: %w", sink, err)
	}
	d.outMu.Lock()
	cached, ok := d.recent[sink].take(after, limit)
	d.outMu.Unlock()
	d.life.RUnlock()
	if ok {
		return cached, nil
	}
	if d.pendingBeforeRead != nil {
		d.pendingBeforeRead()
	}
	out, err := d.pendingFromDisk(sink, after, limit)
	if len(out) > 0 {
		// Complete may have cached some of these between take and the
		// read: they are handed out now, so the cache must forget them.
		d.outMu.Lock()
		d.recent[sink].forgetThrough(out[len(out)-1].Seq)
		d.outMu.Unlock()
	}
	return out, err
}

// pendingFromDisk is Pending without the cache of recent entries.
func (d *DB) pendingFromDisk(sink string, after uint64, limit int) ([]scorer.OutboxEntry, error) {
	var out []scorer.OutboxEntry
	prefix := sinkPrefix(prefixOutbox, sink)
	err := d.view(func(txn *badger.Txn) error {
		// No prefetch: it copies every value into the item's buffer, and
		// ValueCopy below copies it again (a fifth of replay's allocations).
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		start := outboxKey(sink, after+1)
		if after == ^uint64(0) {
			return nil
		}
		for it.Seek(start); it.ValidForPrefix(prefix) && len(out) < limit; it.Next() {
			_, seq, err := parseSinkKey(it.Item().Key())
			if err != nil {
				return err
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			enq, id, payload, err := decodeOutbox(v)
			if err != nil {
				return err
			}
			out = append(out, scorer.OutboxEntry{Sink: sink, Seq: seq, AlertID: id, Payload: payload, Enqueued: enq})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox pending %s: %w", sink, err)
	}
	return out, nil
}

// Ack removes delivered entries of sink. Unknown seqs are ignored.
func (d *DB) Ack(sink string, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := checkSink(sink); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	if err := d.acquire(); err != nil {
		return fmt.Errorf("outbox ack %s: %w", sink, err)
	}
	defer d.life.RUnlock()
	// No lookup before each delete: a point read decompresses a table
	// block and cost more than the rest of Ack (profile of replay). The
	// dispatcher acks only entries Pending returned; a seq that was never
	// allocated is skipped, and the gauge's drift from acking an entry
	// twice is corrected by the maintenance pass's recount.
	d.outMu.Lock()
	next := d.outNext[sink]
	d.outMu.Unlock()
	b := d.newBatch()
	defer b.discard()
	var removed int64
	seen := make(map[uint64]bool, len(seqs))
	for _, seq := range seqs {
		if seq == 0 || seq >= next || seen[seq] {
			continue
		}
		seen[seq] = true
		if err := b.del(outboxKey(sink, seq)); err != nil {
			return fmt.Errorf("outbox ack %s: %w", sink, err)
		}
		removed++
	}
	if err := b.commit(); err != nil {
		return fmt.Errorf("outbox ack %s: %w", sink, err)
	}
	d.outMu.Lock()
	d.pending[sink] = max(0, d.pending[sink]-removed)
	d.m.pending.WithLabelValues(sink).Set(float64(d.pending[sink]))
	d.updateBacklog()
	d.outMu.Unlock()
	return nil
}

// DeadLetter moves an outbox entry to the dead-letter set of its sink, with
// the reason (truncated to 1 KiB). It keeps its sequence number, which
// cannot collide since outbox sequences are never reused.
func (d *DB) DeadLetter(e scorer.OutboxEntry, reason string) error {
	if err := checkSink(e.Sink); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if len(e.AlertID) > maxIDLen {
		return fmt.Errorf("dead letter: alert id of %d bytes exceeds %d", len(e.AlertID), maxIDLen)
	}
	if err := d.acquire(); err != nil {
		return fmt.Errorf("dead letter %s/%d: %w", e.Sink, e.Seq, err)
	}
	defer d.life.RUnlock()
	d.outMu.Lock()
	defer d.outMu.Unlock()
	var wasPending bool
	err := d.bdb.Update(func(txn *badger.Txn) error {
		k := outboxKey(e.Sink, e.Seq)
		_, err := txn.Get(k)
		switch {
		case err == nil:
			wasPending = true
			if err := txn.Delete(k); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return txn.Set(deadKey(e.Sink, e.Seq), encodeDead(e.Enqueued, d.now(), e.AlertID, truncate(reason, maxReasonLen), e.Payload))
	})
	if err != nil {
		return fmt.Errorf("dead letter %s/%d: %w", e.Sink, e.Seq, err)
	}
	if wasPending {
		d.pending[e.Sink]--
		d.m.pending.WithLabelValues(e.Sink).Set(float64(d.pending[e.Sink]))
		d.updateBacklog()
	}
	d.dead[e.Sink]++
	d.m.dead.WithLabelValues(e.Sink).Set(float64(d.dead[e.Sink]))
	return nil
}

// DeadLetters returns up to limit dead letters of sink (all sinks when sink
// is empty), oldest sequence first within a sink.
func (d *DB) DeadLetters(sink string, limit int) ([]DeadLetter, error) {
	prefix := []byte{prefixDead}
	if sink != "" {
		if err := checkSink(sink); err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		prefix = sinkPrefix(prefixDead, sink)
	}
	var out []DeadLetter
	err := d.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			dl, err := decodeDeadItem(it.Item())
			if err != nil {
				return err
			}
			out = append(out, dl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters %s: %w", sink, err)
	}
	return out, nil
}

func decodeDeadItem(item *badger.Item) (DeadLetter, error) {
	sink, seq, err := parseSinkKey(item.Key())
	if err != nil {
		return DeadLetter{}, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return DeadLetter{}, err
	}
	enq, dead, id, reason, payload, err := decodeDead(v)
	if err != nil {
		return DeadLetter{}, err
	}
	return DeadLetter{
		OutboxEntry: scorer.OutboxEntry{Sink: sink, Seq: seq, AlertID: id, Payload: payload, Enqueued: enq},
		Reason:      reason, DeadAt: dead,
	}, nil
}

// ReplayDeadLetters moves every dead letter of sink (all sinks when sink is
// empty) back into the outbox with new sequence numbers, oldest first, and
// returns how many moved. Each moved entry is deleted from the dead-letter
// set in the transaction that re-queues it.
func (d *DB) ReplayDeadLetters(sink string) (int, error) {
	prefix := []byte{prefixDead}
	if sink != "" {
		if err := checkSink(sink); err != nil {
			return 0, fmt.Errorf("replay dead letters: %w", err)
		}
		prefix = sinkPrefix(prefixDead, sink)
	}
	if err := d.acquire(); err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	defer d.life.RUnlock()
	// One replay at a time (two would re-queue the same letters twice),
	// and only the letters there now: an alert the sink refuses again
	// while this runs is dead-lettered under a new sequence, above bound.
	d.replayMu.Lock()
	defer d.replayMu.Unlock()
	d.outMu.Lock()
	bound := maps.Clone(d.outNext)
	d.outMu.Unlock()
	moved := 0
	for {
		n, err := d.replayDeadChunk(prefix, bound)
		moved += n
		if err != nil {
			return moved, fmt.Errorf("replay dead letters %s: %w", sink, err)
		}
		if n == 0 {
			return moved, nil
		}
	}
}

// replayDeadChunk moves up to one transaction's worth of the dead letters
// whose sequence is below bound[sink].
func (d *DB) replayDeadChunk(prefix []byte, bound map[string]uint64) (int, error) {
	const chunk = 1000
	var dls []DeadLetter
	err := d.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: prefix})
		defer it.Close()
		size := 0
		for it.Rewind(); it.Valid() && len(dls) < chunk && size < txnMaxBytes/2; it.Next() {
			dl, err := decodeDeadItem(it.Item())
			if err != nil {
				return err
			}
			if dl.Seq >= bound[dl.Sink] {
				continue
			}
			size += len(dl.Payload) + len(dl.AlertID) + 64
			dls = append(dls, dl)
		}
		return nil
	})
	if err != nil || len(dls) == 0 {
		return 0, err
	}
	d.outMu.Lock()
	defer d.outMu.Unlock()
	now := d.now()
	txn := d.bdb.NewTransaction(true)
	defer txn.Discard()
	added := map[string]int64{}
	for _, dl := range dls {
		seq := d.nextOutbox(dl.Sink)
		added[dl.Sink]++
		if err := txn.Delete(deadKey(dl.Sink, dl.Seq)); err != nil {
			return 0, err
		}
		if err := txn.Set(outboxKey(dl.Sink, seq), encodeOutbox(now, dl.AlertID, dl.Payload)); err != nil {
			return 0, err
		}
	}
	for s := range added {
		if err := txn.Set(outboxSeqKey(s), encodeU64(d.outNext[s])); err != nil {
			return 0, err
		}
	}
	if err := txn.Commit(); err != nil {
		return 0, err
	}
	for s, n := range added {
		d.pending[s] += n
		d.dead[s] -= n
		d.m.pending.WithLabelValues(s).Set(float64(d.pending[s]))
		d.m.dead.WithLabelValues(s).Set(float64(d.dead[s]))
	}
	d.updateBacklog()
	return len(dls), nil
}

// PendingCount returns the number of outbox entries of sink awaiting
// delivery, from the in-memory counter (no scan). It implements
// sinks.PendingCounter, which exports the dispatcher's queue depth.
func (d *DB) PendingCount(sink string) (int, error) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	return int(d.pending[sink]), nil
}
