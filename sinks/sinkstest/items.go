package sinkstest

import (
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/sinks"
)

// Items wraps alerts as a sink batch the way the dispatcher does: each with
// its alert JSON as the stored payload and increasing sequence numbers.
func Items(t testing.TB, alerts ...*scorer.Alert) []sinks.Item {
	t.Helper()
	out := make([]sinks.Item, len(alerts))
	for i, a := range alerts {
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sinks.Item{Alert: a, Payload: b, Seq: uint64(i + 1), Enqueued: time.Now()}
	}
	return out
}
