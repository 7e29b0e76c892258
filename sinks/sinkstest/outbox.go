package sinkstest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// DeadLetter is one entry moved to the dead-letter set.
type DeadLetter struct {
	Entry  scorer.OutboxEntry
	Reason string
}

// Outbox is an in-memory scorer.Outbox. The zero value is not usable; call
// NewOutbox.
type Outbox struct {
	mu      sync.Mutex
	seq     map[string]uint64
	pending map[string][]scorer.OutboxEntry // per sink, in Seq order
	dead    map[string][]DeadLetter
	acked   map[string]int
	now     func() time.Time
	// FailPending, when set, makes Pending return this error.
	failPending error
}

// NewOutbox returns an empty Outbox.
func NewOutbox() *Outbox {
	return &Outbox{
		seq: map[string]uint64{}, pending: map[string][]scorer.OutboxEntry{},
		dead: map[string][]DeadLetter{}, acked: map[string]int{}, now: time.Now,
	}
}

// Put enqueues payload for sink and returns its sequence number.
func (o *Outbox) Put(sink, alertID string, payload []byte) uint64 {
	return o.PutAt(sink, alertID, payload, o.now())
}

// PutAt enqueues payload for sink with the given enqueue time.
func (o *Outbox) PutAt(sink, alertID string, payload []byte, enqueued time.Time) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq[sink]++
	s := o.seq[sink]
	o.pending[sink] = append(o.pending[sink], scorer.OutboxEntry{
		Sink: sink, Seq: s, AlertID: alertID, Payload: slices.Clone(payload), Enqueued: enqueued,
	})
	return s
}

// PutAlert marshals a and enqueues it for sink.
func (o *Outbox) PutAlert(sink string, a *scorer.Alert) uint64 {
	b, err := a.MarshalJSON()
	if err != nil {
		panic(fmt.Sprintf("sinkstest: marshal alert: %v", err)) // test fixture bug
	}
	return o.Put(sink, a.ID, b)
}

// SetPendingError makes Pending fail with err until called with nil.
func (o *Outbox) SetPendingError(err error) {
	o.mu.Lock()
	o.failPending = err
	o.mu.Unlock()
}

// Pending implements scorer.Outbox.
func (o *Outbox) Pending(sink string, after uint64, limit int) ([]scorer.OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failPending != nil {
		return nil, o.failPending
	}
	var out []scorer.OutboxEntry
	for _, e := range o.pending[sink] {
		if e.Seq > after {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// Ack implements scorer.Outbox.
func (o *Outbox) Ack(sink string, seqs []uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	// Usually the oldest entries are acknowledged, in order: drop them
	// without rewriting the whole queue, so that benchmarks with many
	// pending entries do not measure a quadratic Ack.
	p := o.pending[sink]
	k := 0
	for k < len(seqs) && k < len(p) && p[k].Seq == seqs[k] {
		k++
	}
	if k == len(seqs) {
		o.pending[sink] = p[k:]
		o.acked[sink] += k
		return nil
	}
	n := len(o.pending[sink])
	done := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		done[s] = true
	}
	o.pending[sink] = slices.DeleteFunc(o.pending[sink], func(e scorer.OutboxEntry) bool { return done[e.Seq] })
	o.acked[sink] += n - len(o.pending[sink])
	return nil
}

// DeadLetter implements scorer.Outbox.
func (o *Outbox) DeadLetter(e scorer.OutboxEntry, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.pending[e.Sink])
	o.pending[e.Sink] = slices.DeleteFunc(o.pending[e.Sink], func(p scorer.OutboxEntry) bool { return p.Seq == e.Seq })
	if len(o.pending[e.Sink]) == n {
		return errors.New("dead letter: no such entry")
	}
	o.dead[e.Sink] = append(o.dead[e.Sink], DeadLetter{Entry: e, Reason: reason})
	return nil
}

// PendingCount implements sinks.PendingCounter.
func (o *Outbox) PendingCount(sink string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending[sink]), nil
}

// Acked returns how many entries of sink were acknowledged.
func (o *Outbox) Acked(sink string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked[sink]
}

// DeadLetters returns the dead-lettered entries of sink.
func (o *Outbox) DeadLetters(sink string) []DeadLetter {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.dead[sink])
}

// PutAlertAt marshals a and enqueues it for sink with the given enqueue time.
func (o *Outbox) PutAlertAt(sink string, a *scorer.Alert, enqueued time.Time) uint64 {
	b, err := a.MarshalJSON()
	if err != nil {
		panic(fmt.Sprintf("sinkstest: marshal alert: %v", err)) // test fixture bug
	}
	return o.PutAt(sink, a.ID, b, enqueued)
}

var (
	_ scorer.Outbox        = (*Outbox)(nil)
	_ sinks.PendingCounter = (*Outbox)(nil)
)
