package slack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
)

// TestMessageIsStrictJSON: an alert whose event and names carry bytes that
// are not UTF-8 (and long values cut for the message) still gives a body
// strict JSON parsers read.
func TestMessageIsStrictJSON(t *testing.T) {
	srv := sinkstest.NewReceiver(t, nil)
	cfg := slack.DefaultConfig()
	cfg.WebhookURL = secret.New(srv.URL + "/hook")
	s, err := slack.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("slack.New() = %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })

	a := sinkstest.DirtyAlert(1, "nginx:1.27", "Write below tmp")
	a.Subject.Image = "registry/\xffimg:1"
	a.Subject.Pod = strings.Repeat("é", 300) + "\xc3"
	a.Reason = "score \xe2\x80 above threshold"
	if r := s.Send(context.Background(), sinkstest.Items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	bodies := srv.Bodies()
	if len(bodies) != 1 {
		t.Fatalf("Slack got %d messages, want 1", len(bodies))
	}
	if err := scorertest.StrictJSON(bodies[0]); err != nil {
		t.Errorf("message %q: %v", bodies[0], err)
	}
}
