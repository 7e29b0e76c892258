package store

import "github.com/falco-scorer/falco-scorer/scorer"

// Recently committed outbox entries are also kept in memory, per sink, so
// that a dispatcher keeping up with its sink gets them from Pending without
// reading back what Complete has just written (an iterator seek and a copy
// of each value out of the value log), and with the alert header the
// scorer already had (no JSON scan). Badger stays the record: the cache
// only ever answers with entries that Badger holds, and Pending reads
// Badger whenever the cache cannot answer for the whole range asked.
//
// The cache of a sink holds entries with consecutive sequence numbers,
// none of them handed out by Pending yet. It is consistent because:
//   - Complete is the only writer that adds entries to it, under the outbox's mu,
//     after its transaction committed, so every cached entry is in Badger;
//   - a sequence gap (a failed commit, or dead letters re-queued with new
//     sequences) empties the cache before the next entries are added;
//   - entries leave Badger only through Ack and DeadLetter, which the
//     dispatcher calls for entries Pending has handed out, and those leave
//     the cache when handed out, from the cache or from Badger (an entry
//     Complete cached while Pending was reading Badger is forgotten once
//     that read hands it out).
const (
	recentMaxEntries = 4096
	recentMaxBytes   = 8 << 20
)

type recentRing struct {
	entries []scorer.OutboxEntry // consecutive Seq, oldest first
	bytes   int                  // payload bytes held
}

// add appends e (the next sequence after the cached ones, else the cache
// restarts from e), then drops the oldest entries beyond the bounds.
func (r *recentRing) add(e scorer.OutboxEntry) {
	if n := len(r.entries); n > 0 && r.entries[n-1].Seq+1 != e.Seq {
		r.dropFront(n)
	}
	r.entries = append(r.entries, e)
	r.bytes += len(e.Payload)
	drop, bytes := 0, r.bytes
	for len(r.entries)-drop > recentMaxEntries || (bytes > recentMaxBytes && len(r.entries)-drop > 1) {
		bytes -= len(r.entries[drop].Payload)
		drop++
	}
	r.dropFront(drop)
}

// dropFront forgets the n oldest entries.
func (r *recentRing) dropFront(n int) {
	for _, e := range r.entries[:n] {
		r.bytes -= len(e.Payload)
	}
	clear(r.entries[:n])
	r.entries = r.entries[n:]
	if len(r.entries) == 0 {
		r.entries = r.entries[:0:0] // let the backing array go
	}
}

// forgetThrough forgets the entries up to and including seq (handed out
// from Badger).
func (r *recentRing) forgetThrough(seq uint64) {
	if r == nil || len(r.entries) == 0 || seq < r.entries[0].Seq {
		return
	}
	r.dropFront(int(min(seq-r.entries[0].Seq+1, uint64(len(r.entries)))))
}

// take hands out up to limit entries with Seq > after and forgets them and
// every older one; ok is false when the cache cannot answer for that range
// (Badger must be read).
func (r *recentRing) take(after uint64, limit int) (out []scorer.OutboxEntry, ok bool) {
	if r == nil || len(r.entries) == 0 || limit <= 0 {
		return nil, false
	}
	first, last := r.entries[0].Seq, r.entries[len(r.entries)-1].Seq
	if after+1 < first || after >= last {
		return nil, false
	}
	r.dropFront(int(after + 1 - first))
	n := min(limit, len(r.entries))
	out = append([]scorer.OutboxEntry(nil), r.entries[:n]...)
	r.dropFront(n)
	return out, true
}
