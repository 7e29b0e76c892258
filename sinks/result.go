package sinks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is what became of one item of a batch in one Send.
type Status uint8

// The statuses, in the order of their weight when the dispatcher's retry
// loop decides on a batch (Result.Decision: the heaviest failure wins).
const (
	// StatusDelivered: the destination confirmed the item; acknowledge it.
	StatusDelivered Status = iota
	// StatusHeld: the sink chose not to send it yet (a Slack digest);
	// leave it in the outbox and read it again from Result.HeldUntil on.
	StatusHeld
	// StatusDeferred: the sink did not try it in this Send (rate limit)
	// but delivered others; send it again at once, not a failure.
	StatusDeferred
	// StatusPermanent: sending it again cannot help; dead-letter it with
	// Result.Cause (one by one when several failed together).
	StatusPermanent
	// StatusRetry: transient; send it again after Cause.RetryAfter, or the
	// backoff when that is 0.
	StatusRetry
)

var statusNames = [...]string{"delivered", "held", "deferred", "permanent", "retry"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// Failure is why a Send did not deliver items, and so what the dispatcher
// does with them: dead-letter them (Permanent), or send them again after
// RetryAfter or its backoff. A sink builds it where it learns the cause
// (an HTTP status, a broker's error code) with Transient or Rejected, and
// reports it in its Result; the dispatcher reads it there and nowhere else.
type Failure struct {
	// Err says what went wrong, for logs and dead-letter messages. It must
	// not contain a credential or a secret URL.
	Err error
	// Reason is a short bounded token ("http_5xx", "unavailable"), the
	// reason label of the failure metrics. Transient and Rejected fill it
	// when given "": "timeout" for a context deadline, "canceled" for a
	// cancelled context, else "error".
	Reason string
	// Permanent: sending these items again cannot help (a payload the
	// destination rejects).
	Permanent bool
	// RetryAfter is the pause the destination asked for (Retry-After);
	// 0 leaves the dispatcher's backoff.
	RetryAfter time.Duration
}

// Transient returns a Failure worth retrying, with reason (see
// Failure.Reason for "").
func Transient(reason string, err error) *Failure {
	return &Failure{Err: err, Reason: reasonOr(reason, err)}
}

// Rejected returns a permanent Failure: sending the items again cannot
// help.
func Rejected(reason string, err error) *Failure {
	return &Failure{Err: err, Reason: reasonOr(reason, err), Permanent: true}
}

// After sets the pause the destination asked for and returns f.
func (f *Failure) After(d time.Duration) *Failure {
	f.RetryAfter = d
	return f
}

func (f *Failure) String() string {
	if f == nil {
		return "<nil>"
	}
	kind := "transient"
	if f.Permanent {
		kind = "permanent"
	}
	s := fmt.Sprintf("%s %s: %v", kind, f.Reason, f.Err)
	if f.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", f.RetryAfter)
	}
	return s
}

// reasonOr returns reason, or for "" the reason err's kind gives.
func reasonOr(reason string, err error) string {
	switch {
	case reason != "":
		return reason
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}

// errDeferred is the Cause of items a sink deferred (Result.Defer).
var errDeferred = errors.New("deferred: not sent in this batch (rate limit)")

// Result is the outcome of one Send, item by item: Status[i] is what
// became of batch[i]. The failed items (StatusDeferred, StatusPermanent or
// StatusRetry) share Cause: a sink reports one cause per Send. Build it
// with Delivered or Failed, then, for a batch of which only some items got
// through, Fail, Defer and Hold.
type Result struct {
	Status []Status
	// Cause is why the failed items failed; nil when none did.
	Cause *Failure
	// HeldUntil is when the StatusHeld items are due.
	HeldUntil time.Time
	// PerItem: the sink reported items one by one (Fail, Defer or Hold),
	// so the failed ones may be set aside while the rest go on. A Failed
	// batch is a failure of the whole sink, retried in place, in order.
	PerItem bool
}

// Delivered returns the Result of a batch of n items all confirmed.
func Delivered(n int) Result { return Result{Status: make([]Status, n)} }

// Failed returns the Result of a batch of n items none of which went
// through because the sink as a whole failed (network, auth, a broker
// down): the dispatcher retries the batch in place, in order, or
// dead-letters it when f is permanent.
func Failed(n int, f *Failure) Result {
	r := Result{Status: make([]Status, n), Cause: f}
	st := StatusRetry
	if f != nil && f.Permanent {
		st = StatusPermanent
	}
	for i := range r.Status {
		r.Status[i] = st
	}
	return r
}

// Fail marks the items at indexes as failed with f, one by one.
func (r *Result) Fail(f *Failure, indexes ...int) {
	st := StatusRetry
	if f != nil && f.Permanent {
		st = StatusPermanent
	}
	r.set(st, indexes)
	r.Cause = f
}

// Defer marks the items at indexes as not tried in this Send (a
// rate-limited sink stopped before its send timeout would run out waiting
// for its next slot). The dispatcher sends them again at once, without
// counting a failure or backing off: the sink paces itself. When nothing
// else of the batch was delivered, they count as a transient failure.
func (r *Result) Defer(indexes ...int) {
	r.set(StatusDeferred, indexes)
	if r.Cause == nil {
		r.Cause = Transient("", errDeferred)
	}
}

// Hold marks the items at indexes as held by the sink until until (Slack
// folds an incident's follow-ups into one digest per digest_interval): not
// a failure; the dispatcher leaves them in the outbox and reads them again
// from then on. A failed item stays failed.
func (r *Result) Hold(until time.Time, indexes ...int) {
	if len(indexes) == 0 {
		return
	}
	r.PerItem = true
	for _, i := range indexes {
		if i >= 0 && i < len(r.Status) && r.Status[i] == StatusDelivered {
			r.Status[i] = StatusHeld
		}
	}
	if r.HeldUntil.IsZero() || until.Before(r.HeldUntil) {
		r.HeldUntil = until
	}
}

func (r *Result) set(st Status, indexes []int) {
	r.PerItem = true
	for _, i := range indexes {
		if i >= 0 && i < len(r.Status) {
			r.Status[i] = st
		}
	}
}

// OK reports whether every item was delivered.
func (r Result) OK() bool { return r.Count(StatusDelivered) == len(r.Status) }

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

// Indexes returns the indexes of the items with status s, ascending.
func (r Result) Indexes(s Status) []int {
	var out []int
	for i, x := range r.Status {
		if x == s {
			out = append(out, i)
		}
	}
	return out
}

// Decision is what the dispatcher does with the failed items (neither
// delivered nor held): the heaviest of their statuses, StatusDelivered
// when there are none. Deferred items count as a transient failure when
// nothing of the batch was delivered: the sink made no progress.
func (r Result) Decision() Status {
	worst := StatusDelivered
	for _, s := range r.Status {
		if s > StatusHeld && s > worst {
			worst = s
		}
	}
	if worst == StatusDeferred && r.Count(StatusDelivered) == 0 {
		return StatusRetry
	}
	return worst
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

// FailedItems returns the items of batch neither delivered nor held, in
// batch order.
func (r Result) FailedItems(batch []Item) []Item {
	var out []Item
	for i, x := range r.Status {
		if x > StatusHeld {
			out = append(out, batch[i])
		}
	}
	return out
}

func (r Result) String() string {
	var parts []string
	for s := StatusDelivered; s <= StatusRetry; s++ {
		if idx := r.Indexes(s); len(idx) > 0 {
			parts = append(parts, fmt.Sprintf("%s %v", s, idx))
		}
	}
	out := strings.Join(parts, ", ")
	if r.Cause != nil {
		out += "; " + r.Cause.String()
	}
	return out
}

// checked returns r made safe for the retry loop, as the dispatcher's one
// classifier of a Send's outcome: a Result of the wrong length (a sink's
// bug) fails the whole batch, failed items always have a Cause with a
// reason, and deferred items of a batch of which nothing was delivered
// are a transient failure.
func (r Result) checked(sink string, n int) Result {
	if len(r.Status) != n {
		return Failed(n, Transient("sink_bug",
			fmt.Errorf("sink %s reported %d outcomes for %d alerts", sink, len(r.Status), n)))
	}
	d := r.Decision()
	if d == StatusDelivered {
		return r
	}
	if r.Cause == nil {
		r.Cause = Transient("", errors.New("not delivered (the sink gave no cause)"))
	}
	if r.Cause.Reason == "" {
		c := *r.Cause
		c.Reason = reasonOr("", c.Err)
		r.Cause = &c
	}
	if r.Cause.Err == nil {
		c := *r.Cause
		c.Err = errors.New(c.Reason)
		r.Cause = &c
	}
	if d == StatusRetry && r.Count(StatusDeferred) > 0 && r.Count(StatusDelivered) == 0 {
		st := append([]Status(nil), r.Status...)
		for i, s := range st {
			if s == StatusDeferred {
				st[i] = StatusRetry
			}
		}
		r.Status = st
	}
	return r
}
