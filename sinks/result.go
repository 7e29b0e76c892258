package sinks

import (
	"errors"
	"time"
)

// Status is what became of one item of a batch in one Send.
type Status uint8

// The statuses, in the order the dispatcher's retry loop decides on them.
const (
	// StatusDelivered: the destination confirmed the item; acknowledge it.
	StatusDelivered Status = iota
	// StatusHeld: the sink chose not to send it yet (a Slack digest);
	// leave it in the outbox and read it again from Result.HeldUntil on.
	StatusHeld
	// StatusDeferred: the sink did not try it in this Send (rate limit,
	// ErrDeferred) but delivered others; send it again at once, not a
	// failure.
	StatusDeferred
	// StatusPermanent: sending it again cannot help; dead-letter it with
	// Result.Reason (one by one when several failed together).
	StatusPermanent
	// StatusRetry: transient; send it again after Result.RetryAfter, or
	// the backoff when that is 0.
	StatusRetry
)

// Result is the outcome of one Send, item by item: Status[i] is what
// became of batch[i]. The failed items (StatusDeferred, StatusPermanent or
// StatusRetry, one of them for the whole batch: a sink reports one cause)
// share Err, Reason and RetryAfter. ResultOf reads it from the error a Sink
// returns, so that the retry loop decides on one value instead of asking
// the error wrappers one by one.
type Result struct {
	Status []Status
	// Err is Send's error as returned, for logs and dead-letter messages;
	// nil when every item was delivered.
	Err error
	// Reason is the bounded reason label of Err (ReasonOf).
	Reason string
	// RetryAfter is the pause the destination asked for (RetryAfterOf),
	// 0 when it asked for none.
	RetryAfter time.Duration
	// HeldUntil is when the StatusHeld items are due.
	HeldUntil time.Time
	// PerItem: the sink reported items one by one (a *PartialError), so
	// the failed ones may be set aside while the rest go on.
	PerItem bool
}

// ResultOf classifies the outcome of sending batch (n items) that returned
// err, following the error protocol Sink documents. It is the dispatcher's
// one classifier.
func ResultOf(n int, err error) Result {
	r := Result{Status: make([]Status, n), Err: err}
	if err == nil {
		return r
	}
	r.Reason = ReasonOf(err)
	if ra, ok := RetryAfterOf(err); ok {
		r.RetryAfter = ra
	}
	failure := StatusRetry
	if IsPermanent(err) {
		failure = StatusPermanent
	}
	var pe *PartialError
	if !errors.As(err, &pe) {
		for i := range r.Status {
			r.Status[i] = failure
		}
		return r
	}
	r.perItem(pe, failure)
	return r
}

// perItem sets the statuses a *PartialError gives, failure for the items
// it lists as failed.
func (r *Result) perItem(pe *PartialError, failure Status) {
	n := len(r.Status)
	r.PerItem, r.HeldUntil = true, pe.HeldUntil
	for _, i := range pe.Held {
		if i >= 0 && i < n {
			r.Status[i] = StatusHeld
		}
	}
	for _, i := range pe.Failed { // failed wins over held
		if i >= 0 && i < n {
			r.Status[i] = failure
		}
	}
	if !errors.Is(pe.Err, ErrDeferred) || r.Count(StatusDelivered) == 0 {
		return
	}
	for i, s := range r.Status {
		if s == failure {
			r.Status[i] = StatusDeferred
		}
	}
}

// Count returns how many items have status s.
func (r Result) Count(s Status) int {
	n := 0
	for _, x := range r.Status {
		if x == s {
			n++
		}
	}
	return n
}

// Failure returns the status of the items not delivered nor held
// (StatusDelivered when there are none).
func (r Result) Failure() Status {
	for _, s := range r.Status {
		if s > StatusHeld {
			return s
		}
	}
	return StatusDelivered
}

// Items returns the items of batch with status s, in batch order.
func (r Result) Items(batch []Item, s Status) []Item {
	var out []Item
	for i, x := range r.Status {
		if x == s {
			out = append(out, batch[i])
		}
	}
	return out
}
