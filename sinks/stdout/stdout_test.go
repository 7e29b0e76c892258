package stdout_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/stdout"
)

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestSend(t *testing.T) {
	var items []sinks.Item
	for i := range 3 {
		a := sinkstest.FalcoAlert(i, "nginx:1.27", "r")
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, sinks.Item{Alert: a, Payload: b, Enqueued: time.Now()})
	}
	var out bytes.Buffer
	if r := stdout.New(&out).Send(context.Background(), items); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines = %d, want 3", len(lines))
	}
	for i, l := range lines {
		if l != string(items[i].Payload) {
			t.Errorf("line %d = %s, want the payload unchanged %s", i, l, items[i].Payload)
		}
	}
	r := stdout.New(failWriter{}).Send(context.Background(), items)
	if r.Count(sinks.StatusRetry) != len(items) || r.PerItem || r.Cause == nil || r.Cause.Permanent || r.Cause.Reason != "write_error" {
		t.Errorf("Send(broken writer) = %v, want a transient write_error for the batch", r)
	}
}
