package store

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// outbox keeps, over the store's Badger handle, each sink's alerts until
// the sink acknowledges them, and the dead letters it gave up on. Its
// methods are the DB's (embedded): scorer.Outbox, Backlogged, SetSinks and
// the dead-letter admin. Sequence allocation and its commit share mu, so a
// sink's entries become visible in sequence order and a reader's cursor
// (Pending's after) never skips one; mu also guards the counts and the
// cache of just-committed entries (recent.go).
type outbox struct {
	h          *handle
	log        zerolog.Logger
	now        func() time.Time
	m          *metrics
	maxEntries int // max_outbox_entries: Backlogged at this many

	mu      sync.Mutex
	next    map[string]uint64      // next outbox seq per sink (never reused)
	pending map[string]int64       // outbox entries per sink, for the gauge
	dead    map[string]int64       // dead letters per sink, for the gauge
	recent  map[string]*recentRing // entries just committed, per sink (recent.go)
	tracked map[string]bool        // sinks that have a dispatcher (SetSinks); nil: every sink

	pendingBeforeRead func()      // tests: runs in Pending between the cache's answer and the Badger read
	backlog           atomic.Bool // some tracked sink's pending entries reached maxEntries
	replayMu          sync.Mutex  // one dead-letter replay at a time
}

func newOutbox(h *handle, log zerolog.Logger, now func() time.Time, m *metrics, maxEntries int) *outbox {
	return &outbox{h: h, log: log, now: now, m: m, maxEntries: maxEntries,
		next: map[string]uint64{}, pending: map[string]int64{}, dead: map[string]int64{},
		recent: map[string]*recentRing{}}
}

// recoverKey counts one outbox, dead-letter or high-water-mark key found
// at open, so that sequences resume above both the marks and the keys.
func (o *outbox) recoverKey(item *badger.Item) error {
	k := item.Key()
	if k[0] == prefixOutboxSeq {
		if len(k) < 2 || len(k) != 2+int(k[1]) {
			return fmt.Errorf("outbox seq key %x: %w", k, errCorrupt)
		}
		n, err := counterValue(item)
		if err != nil {
			return err
		}
		sink := string(k[2:])
		o.next[sink] = max(o.next[sink], n)
		return nil
	}
	sink, seq, err := parseSinkKey(k)
	if err != nil {
		return err
	}
	o.next[sink] = max(o.next[sink], seq+1)
	if k[0] == prefixOutbox {
		o.pending[sink]++
	} else {
		o.dead[sink]++
	}
	return nil
}

// recovered sets the gauges once every key was counted (recoverKey).
func (o *outbox) recovered() {
	for sink := range o.next {
		if o.next[sink] == 0 {
			o.next[sink] = 1
		}
		o.m.pending.WithLabelValues(sink).Set(float64(o.pending[sink]))
		o.m.dead.WithLabelValues(sink).Set(float64(o.dead[sink]))
	}
	o.updateBacklog()
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

// outboxPut is one Complete's alerts with the sequences allocated to them.
// mu is held from allocate to added.
type outboxPut struct {
	now    time.Time
	alerts []scorer.OutboxPut
	seqs   []uint64
	added  map[string]int64 // entries per sink
}

// allocate gives each alert the next sequence of its sink; mu must be held.
func (o *outbox) allocate(now time.Time, alerts []scorer.OutboxPut) *outboxPut {
	p := &outboxPut{now: now, alerts: alerts, seqs: make([]uint64, len(alerts)), added: map[string]int64{}}
	for i, a := range alerts {
		p.seqs[i] = o.nextOutbox(a.Sink)
		p.added[a.Sink]++
	}
	return p
}

// stage adds the sinks' high-water marks and then the entries to b.
func (o *outbox) stage(b *batch, p *outboxPut) error {
	for sink := range p.added {
		if err := b.set(outboxSeqKey(sink), encodeU64(o.next[sink])); err != nil {
			return err
		}
	}
	for i, a := range p.alerts {
		if err := b.set(outboxKey(a.Sink, p.seqs[i]), encodeOutbox(p.now, a.AlertID, a.Payload)); err != nil {
			return err
		}
	}
	return nil
}

// added updates what the commit of p changed in memory: the gauges and
// the recent entries. mu must be held.
func (o *outbox) added(p *outboxPut) {
	for sink, n := range p.added {
		o.pending[sink] += n
		o.m.pending.WithLabelValues(sink).Set(float64(o.pending[sink]))
	}
	o.updateBacklog()
	for i, a := range p.alerts {
		r := o.recent[a.Sink]
		if r == nil {
			r = &recentRing{}
			o.recent[a.Sink] = r
		}
		r.add(scorer.OutboxEntry{Sink: a.Sink, Seq: p.seqs[i], AlertID: a.AlertID, Payload: a.Payload, Enqueued: nanosTime(timeNanos(p.now)), Header: a.Header})
	}
}

// nextOutbox allocates the next sequence of sink; mu must be held.
func (o *outbox) nextOutbox(sink string) uint64 {
	seq := max(o.next[sink], 1)
	o.next[sink] = seq + 1
	return seq
}

// DeadLetter is an outbox entry that could not be delivered.
type DeadLetter struct {
	scorer.OutboxEntry
	Reason string    `json:"reason"`
	DeadAt time.Time `json:"dead_at"`
}

// Pending returns up to limit entries of sink with Seq > after, in Seq
// order. Entries are committed in sequence order, so a reader that keeps the
// last Seq it saw as its cursor misses none.
func (o *outbox) Pending(sink string, after uint64, limit int) ([]scorer.OutboxEntry, error) {
	if err := checkSink(sink); err != nil {
		return nil, fmt.Errorf("outbox pending: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	// Not from memory once closed. Released before the read below, which
	// takes it again (a nested read lock could deadlock with Close).
	if err := o.h.acquire(); err != nil {
		return nil, fmt.Errorf("outbox pending %s: %w", sink, err)
	}
	o.mu.Lock()
	cached, ok := o.recent[sink].take(after, limit)
	o.mu.Unlock()
	o.h.life.RUnlock()
	if ok {
		return cached, nil
	}
	if o.pendingBeforeRead != nil {
		o.pendingBeforeRead()
	}
	out, err := o.pendingFromDisk(sink, after, limit)
	if len(out) > 0 {
		// Complete may have cached some of these between take and the
		// read: they are handed out now, so the cache must forget them.
		o.mu.Lock()
		o.recent[sink].forgetThrough(out[len(out)-1].Seq)
		o.mu.Unlock()
	}
	return out, err
}

// pendingFromDisk is Pending without the cache of recent entries.
func (o *outbox) pendingFromDisk(sink string, after uint64, limit int) ([]scorer.OutboxEntry, error) {
	var out []scorer.OutboxEntry
	prefix := sinkPrefix(prefixOutbox, sink)
	err := o.h.view(func(txn *badger.Txn) error {
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
func (o *outbox) Ack(sink string, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := checkSink(sink); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	if err := o.h.acquire(); err != nil {
		return fmt.Errorf("outbox ack %s: %w", sink, err)
	}
	defer o.h.life.RUnlock()
	// No lookup before each delete: a point read decompresses a table
	// block and cost more than the rest of Ack (profile of replay). The
	// dispatcher acks only entries Pending returned; a seq that was never
	// allocated is skipped, and the gauge's drift from acking an entry
	// twice is corrected by the maintenance pass's recount.
	o.mu.Lock()
	next := o.next[sink]
	o.mu.Unlock()
	b := o.h.newBatch()
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
	o.mu.Lock()
	o.pending[sink] = max(0, o.pending[sink]-removed)
	o.m.pending.WithLabelValues(sink).Set(float64(o.pending[sink]))
	o.updateBacklog()
	o.mu.Unlock()
	return nil
}

// DeadLetter moves an outbox entry to the dead-letter set of its sink, with
// the reason (truncated to 1 KiB). It keeps its sequence number, which
// cannot collide since outbox sequences are never reused.
func (o *outbox) DeadLetter(e scorer.OutboxEntry, reason string) error {
	if err := checkSink(e.Sink); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if len(e.AlertID) > maxIDLen {
		return fmt.Errorf("dead letter: alert id of %d bytes exceeds %d", len(e.AlertID), maxIDLen)
	}
	if err := o.h.acquire(); err != nil {
		return fmt.Errorf("dead letter %s/%d: %w", e.Sink, e.Seq, err)
	}
	defer o.h.life.RUnlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	var wasPending bool
	err := o.h.bdb.Update(func(txn *badger.Txn) error {
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
		return txn.Set(deadKey(e.Sink, e.Seq), encodeDead(e.Enqueued, o.now(), e.AlertID, truncate(reason, maxReasonLen), e.Payload))
	})
	if err != nil {
		return fmt.Errorf("dead letter %s/%d: %w", e.Sink, e.Seq, err)
	}
	if wasPending {
		o.pending[e.Sink]--
		o.m.pending.WithLabelValues(e.Sink).Set(float64(o.pending[e.Sink]))
		o.updateBacklog()
	}
	o.dead[e.Sink]++
	o.m.dead.WithLabelValues(e.Sink).Set(float64(o.dead[e.Sink]))
	return nil
}

// DeadLetters returns up to limit dead letters of sink (all sinks when sink
// is empty), oldest sequence first within a sink.
func (o *outbox) DeadLetters(sink string, limit int) ([]DeadLetter, error) {
	prefix := []byte{prefixDead}
	if sink != "" {
		if err := checkSink(sink); err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		prefix = sinkPrefix(prefixDead, sink)
	}
	var out []DeadLetter
	err := o.h.view(func(txn *badger.Txn) error {
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
func (o *outbox) ReplayDeadLetters(sink string) (int, error) {
	prefix := []byte{prefixDead}
	if sink != "" {
		if err := checkSink(sink); err != nil {
			return 0, fmt.Errorf("replay dead letters: %w", err)
		}
		prefix = sinkPrefix(prefixDead, sink)
	}
	if err := o.h.acquire(); err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	defer o.h.life.RUnlock()
	// One replay at a time (two would re-queue the same letters twice),
	// and only the letters there now: an alert the sink refuses again
	// while this runs is dead-lettered under a new sequence, above bound.
	o.replayMu.Lock()
	defer o.replayMu.Unlock()
	o.mu.Lock()
	bound := maps.Clone(o.next)
	o.mu.Unlock()
	moved := 0
	for {
		n, err := o.replayDeadChunk(prefix, bound)
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
func (o *outbox) replayDeadChunk(prefix []byte, bound map[string]uint64) (int, error) {
	dls, err := o.readDeadChunk(prefix, bound)
	if err != nil || len(dls) == 0 {
		return 0, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	added, err := o.requeue(dls)
	if err != nil {
		return 0, err
	}
	for s, n := range added {
		o.pending[s] += n
		o.dead[s] -= n
		o.m.pending.WithLabelValues(s).Set(float64(o.pending[s]))
		o.m.dead.WithLabelValues(s).Set(float64(o.dead[s]))
	}
	o.updateBacklog()
	return len(dls), nil
}

// readDeadChunk reads up to one transaction's worth of the dead letters
// under prefix whose sequence is below bound[sink].
func (o *outbox) readDeadChunk(prefix []byte, bound map[string]uint64) ([]DeadLetter, error) {
	const chunk = 1000
	var dls []DeadLetter
	err := o.h.bdb.View(func(txn *badger.Txn) error {
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
	return dls, err
}

// requeue moves dls back into the outbox under new sequences, in one
// transaction with the sinks' high-water marks, and returns how many
// moved per sink. mu must be held.
func (o *outbox) requeue(dls []DeadLetter) (map[string]int64, error) {
	now := o.now()
	txn := o.h.bdb.NewTransaction(true)
	defer txn.Discard()
	added := map[string]int64{}
	for _, dl := range dls {
		seq := o.nextOutbox(dl.Sink)
		added[dl.Sink]++
		if err := txn.Delete(deadKey(dl.Sink, dl.Seq)); err != nil {
			return nil, err
		}
		if err := txn.Set(outboxKey(dl.Sink, seq), encodeOutbox(now, dl.AlertID, dl.Payload)); err != nil {
			return nil, err
		}
	}
	for s := range added {
		if err := txn.Set(outboxSeqKey(s), encodeU64(o.next[s])); err != nil {
			return nil, err
		}
	}
	return added, txn.Commit()
}

// PendingCount returns the number of outbox entries of sink awaiting
// delivery, from the in-memory counter (no scan). It implements
// sinks.PendingCounter, which exports the dispatcher's queue depth.
func (o *outbox) PendingCount(sink string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.pending[sink]), nil
}

// Backlogged reports whether some sink's outbox reached max_outbox_entries
// undelivered alerts (and has not yet drained below 90 % of it). The pipeline then refuses new events
// (overloaded) instead of letting the outbox grow without bound: alerts are
// never dropped, so a sink that falls behind slows ingest down.
func (o *outbox) Backlogged() bool { return o.backlog.Load() }

// SetSinks names the sinks that have a dispatcher. Only their outboxes
// count toward Backlogged: the outbox of a sink removed from the
// configuration is drained by nobody and must not stop ingest. Its alerts
// stay until the sink is enabled again, which is logged here.
func (o *outbox) SetSinks(names []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tracked = make(map[string]bool, len(names))
	for _, n := range names {
		o.tracked[n] = true
	}
	for sink, n := range o.pending {
		if n > 0 && !o.tracked[sink] {
			o.log.Warn().Str("sink", sink).Int64("pending", n).
				Msg("the outbox holds alerts for a sink that is not enabled: they are kept, and delivered once it is enabled again")
		}
	}
	o.updateBacklog()
}

// updateBacklog recomputes Backlogged after a change of the pending counts,
// logging each change of state; mu must be held.
func (o *outbox) updateBacklog() {
	worst, over := "", int64(-1)
	for sink, n := range o.pending {
		if o.tracked != nil && !o.tracked[sink] {
			continue
		}
		if n > over {
			worst, over = sink, n
		}
	}
	// Hysteresis: on at the bound, off below 90 % of it, so a queue
	// hovering at the bound neither flaps nor floods the log.
	was := o.backlog.Load()
	full := over >= int64(o.maxEntries) || (was && over >= int64(o.maxEntries)*9/10)
	if full == was {
		return
	}
	o.backlog.Store(full)
	o.m.backlogged.Set(b2f(full))
	if full {
		o.log.Warn().Str("sink", worst).Int64("pending", over).Int("max_outbox_entries", o.maxEntries).
			Msg("outbox backlog full: refusing new events (HTTP 429) until the sink catches up")
	} else {
		o.log.Info().Msg("outbox backlog below 90 % of max_outbox_entries: accepting events again")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// recount resets the queue gauges from a keys-only scan, correcting the
// drift of the incremental updates (for example a Complete of unknown seqs).
func (o *outbox) recount() error {
	pending, dead := map[string]int64{}, map[string]int64{}
	err := o.h.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Seek([]byte{prefixOutbox}); it.Valid(); it.Next() {
			k := it.Item().Key()
			switch k[0] {
			case prefixOutboxSeq:
			case prefixOutbox, prefixDead:
				sink, _, err := parseSinkKey(k)
				if err != nil {
					return err
				}
				if k[0] == prefixOutbox {
					pending[sink]++
				} else {
					dead[sink]++
				}
			default:
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for sink := range o.next {
		o.pending[sink], o.dead[sink] = pending[sink], dead[sink]
		o.updateBacklog()
		o.m.pending.WithLabelValues(sink).Set(float64(pending[sink]))
		o.m.dead.WithLabelValues(sink).Set(float64(dead[sink]))
	}
	return nil
}
