package webhook_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
)

// TestBodyIsStrictJSON: an event with bytes that are not UTF-8 still gives
// a body strict JSON parsers read, whether the alert comes from the outbox
// (Send) or straight from the pipeline with its event as received
// (FalcoJSON).
func TestBodyIsStrictJSON(t *testing.T) {
	srv := sinkstest.NewReceiver(t, nil)
	s := newSink(t, srv.URL, zerolog.Nop())
	a := sinkstest.DirtyAlert(1, "nginx:1.27", "Write below tmp")
	if r := s.Send(context.Background(), items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	body := srv.Requests()[0].Body
	if err := scorertest.StrictJSON(body); err != nil {
		t.Errorf("body %q: %v", body, err)
	}
	ev, err := scorer.DecodeJSON(body)
	if err != nil {
		t.Fatalf("DecodeJSON(body) = %v", err)
	}
	if v, want := ev.Fields.Value("proc.cmdline"), "bash -i /tmp/\ufffd\ufffd\ufffd.sh"; v != want {
		t.Errorf("proc.cmdline = %q, want %q (each bad byte as U+FFFD)", v, want)
	}
	b, err := webhook.FalcoJSON(a)
	if err != nil {
		t.Fatalf("FalcoJSON() = %v", err)
	}
	if err := scorertest.StrictJSON(b); err != nil {
		t.Errorf("FalcoJSON() = %q: %v", b, err)
	}
}
