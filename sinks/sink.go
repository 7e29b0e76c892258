package sinks

import (
	"context"
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
// it fails, or ctx is done. It does not retry. It returns one Status per
// item (see Result): delivered; held until a time (the sink chose to send
// it later); deferred (not tried in this Send); or failed with the Send's
// one Cause, a Failure that says whether sending again can help
// (permanent: the dispatcher dead-letters the items, one by one so that
// one bad item does not take its neighbours with it), which pause the
// destination asked for (retry after) and the bounded reason label. A
// batch the sink as a whole could not send is Failed: the dispatcher
// retries it in place, in order. Items a sink fails one by one
// (Result.Fail) may be set aside while the rest go on. A transient failure
// means the destination may see the items again (alert ids are stable).
//
// The dispatcher decides on that value once per Send, in one retry loop;
// sinks mark nothing on errors. A Failure's Err must not contain a
// credential or a secret URL.
//
// Close flushes and releases the destination's resources within ctx. Send
// must not be called after Close.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Item) Result
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
