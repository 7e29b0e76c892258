package kafka_test

import (
	"context"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

// TestRecordIsStrictJSON: an event with bytes that are not UTF-8 (a file
// name, a command line) still gives a record whose value strict JSON
// parsers read and whose headers are UTF-8.
func TestRecordIsStrictJSON(t *testing.T) {
	c := newCluster(t)
	addr := c.ListenAddrs()[0]
	s := newSink(t, testConfig(addr, "utf8"), zerolog.Nop())
	batch := items(t, sinkstest.DirtyAlert(1, "nginx:1.27", rule))
	// A header as the scorer hands it over from memory, with bytes of the
	// event's own: not UTF-8 either.
	batch[0].Header.Rule, batch[0].Header.Image = "Write below /tmp/\xff", "img\xc3:1"
	if r := s.Send(context.Background(), batch); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	r := consume(t, addr, "utf8", 1)[0]
	if err := scorertest.StrictJSON(r.Value); err != nil {
		t.Errorf("record value %q: %v", r.Value, err)
	}
	for _, h := range r.Headers {
		if !utf8.Valid(h.Value) {
			t.Errorf("header %s = %q, want UTF-8", h.Key, h.Value)
		}
	}
	if got, _ := header(r, "rule"); got != "Write below /tmp/\ufffd" {
		t.Errorf("header rule = %q, want the bad byte as U+FFFD", got)
	}
}
