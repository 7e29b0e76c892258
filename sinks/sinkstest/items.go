package sinkstest

import (
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Items wraps alerts as a sink batch the way the dispatcher does: each with
// its alert JSON as the stored payload, the header decoded from it, and
// increasing sequence numbers. Alert is set too, for sinks that need it.
func Items(t testing.TB, alerts ...*scorer.Alert) []sinks.Item {
	t.Helper()
	out := make([]sinks.Item, len(alerts))
	for i, a := range alerts {
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		h, err := scorer.DecodeAlertHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sinks.Item{Header: h, Alert: a, Payload: b, Seq: uint64(i + 1), Enqueued: time.Now()}
	}
	return out
}
