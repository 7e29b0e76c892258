package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// Item is one alert to deliver: its header, the decoded alert and the exact
// payload the outbox stored (Alert.MarshalJSON), which is strict JSON (valid
// UTF-8, no escape of an unpaired surrogate: the dispatcher repairs entries
// written before Alert.MarshalJSON ensured it). Sinks that forward the alert
// JSON (Kafka, stdout) send Payload unchanged rather than marshalling again.
type Item struct {
	Header   scorer.AlertHeader // always set
	Alert    *scorer.Alert      // nil for a HeaderOnly sink
	Payload  []byte
	Seq      uint64    // outbox sequence number within the sink
	Enqueued time.Time // when the alert entered the outbox
}

// Sink delivers alerts to one destination.
//
// Send blocks until the destination confirmed every item of batch, or until
// it fails, or ctx is done. It does not retry. Its outcomes:
//   - nil: every item was confirmed; the dispatcher acknowledges them all.
//   - a *PartialError: the items whose indexes are not in Failed were
//     confirmed; the rest failed with PartialError.Err.
//   - an error marked with Permanent: sending these items again will not help
//     (for example a payload the destination rejects); the dispatcher
//     dead-letters them (one by one, so one bad item does not take its
//     neighbours with it).
//   - an error marked with RetryAfter: the destination asked for a pause;
//     the dispatcher waits at least that long before sending again.
//   - any other error: transient; the dispatcher sends the failed items again
//     later, so the destination may see duplicates (alert ids are stable).
//
// The dispatcher reads these outcomes once, into a Result with one Status
// per item (ResultOf), and its retry loop decides on that value.
//
// An error must not contain a credential or a secret URL.
//
// Close flushes and releases the destination's resources within ctx. Send
// must not be called after Close.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Item) error
	Close(ctx context.Context) error
}

// Pacer is implemented by sinks with a rate limit (Slack). The dispatcher
// calls Pace before it reads the next batch from the outbox, so that alerts
// arriving while the sink waits for its next slot join that batch instead of
// waiting for their own message. The dispatcher asks once, when it is
// created, whether the sink is a Pacer (as for HeaderOnly and Keyed); each
// implementation asserts the interfaces it means to implement at compile
// time, so that a changed signature fails the build instead of quietly
// turning the behaviour off.
type Pacer interface {
	// Pace blocks until the sink may send again or ctx is done.
	Pace(ctx context.Context) error
}

// HeaderOnly is implemented by sinks that read nothing of an Item but
// Header and Payload (Kafka, stdout). Decoding the whole alert costs the
// dispatcher several times more than its header, so for these sinks it
// decodes only the header and leaves Item.Alert nil. An entry that is not
// JSON, lacks the Falco event object or has a malformed header is
// dead-lettered all the same; the rest of the alert is not checked (see
// scorer.DecodeAlertHeader).
type HeaderOnly interface {
	// HeaderOnly reports whether the sink reads only Item.Header and
	// Item.Payload. The dispatcher asks once, when it is created.
	HeaderOnly() bool
}

// PartialError reports a batch of which only some items were delivered.
type PartialError struct {
	Failed []int // indexes into the batch of the items not delivered, ascending
	Err    error // why they failed; may be marked Permanent or RetryAfter
	// Held lists items the sink chose not to send yet, which is not a
	// failure (Slack folds an incident's follow-ups into one digest per
	// digest_interval): the dispatcher leaves them in the outbox, goes on,
	// and sends them again from HeldUntil on. Failed may then be empty.
	Held      []int
	HeldUntil time.Time
}

func (e *PartialError) Error() string {
	if len(e.Failed) == 0 {
		return fmt.Sprintf("%d items held until %s", len(e.Held), e.HeldUntil.Format(time.RFC3339))
	}
	return fmt.Sprintf("%d items not delivered: %v", len(e.Failed), e.Err)
}

// Unwrap returns the cause, so that IsPermanent and RetryAfterOf see it.
func (e *PartialError) Unwrap() error { return e.Err }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ErrDeferred is the cause of a PartialError for the items a sink did not
// try in this Send: a rate-limited sink (Slack) stops before its send
// timeout would run out waiting for its next slot. The dispatcher sends them
// again at once, without counting a failure or backing off; the sink paces
// itself.
var ErrDeferred = errors.New("deferred: not sent in this batch (rate limit)")

// Permanent marks err as not worth retrying. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with a delay the destination asked for
// (Slack's Retry-After). RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, d: d}
}

// RetryAfterOf returns the delay requested with RetryAfter, if any.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.d, true
	}
	return 0, false
}

type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// WithReason attaches a short bounded token ("http_5xx", "unavailable") to
// err, used as the reason label of the failure metrics. WithReason(r, nil) is
// nil.
func WithReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &reasonError{reason: reason, err: err}
}

// ReasonOf returns the reason attached with WithReason, "timeout" for a
// context deadline, "canceled" for a cancelled context, or "error".
func ReasonOf(err error) string {
	var r *reasonError
	switch {
	case errors.As(err, &r):
		return r.reason
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "error"
	}
}
