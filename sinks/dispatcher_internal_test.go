package sinks

import (
	"testing"
	"time"
)

// TestRetryWait: a destination's Retry-After is honoured up to
// maxRetryAfter (a proxy's bogus hour must not stall the sink); without one
// the backoff applies.
func TestRetryWait(t *testing.T) {
	d := &Dispatcher{cfg: DefaultConfig()}
	if got := d.pause(7*time.Second, 0); got != 7*time.Second {
		t.Errorf("Retry-After 7s: wait %s, want 7s", got)
	}
	if got := d.pause(time.Hour, 0); got != maxRetryAfter {
		t.Errorf("Retry-After 1h: wait %s, want %s", got, maxRetryAfter)
	}
	if got := d.pause(0, 0); got < d.cfg.InitialBackoff/2 || got > d.cfg.InitialBackoff {
		t.Errorf("no Retry-After: wait %s, want the first backoff in [%s, %s]", got, d.cfg.InitialBackoff/2, d.cfg.InitialBackoff)
	}
}
