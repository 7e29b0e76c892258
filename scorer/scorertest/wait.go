package scorertest

import (
	"testing"
	"time"
)

// MinWait is the least time WaitFor waits. The deadline only turns a hang
// into a failure: a busy machine must not reach it, so a test asserts the
// event it waits for, never how long it took.
const MinWait = 30 * time.Second

// WaitFor polls cond until it holds, and fails the test after MinWait.
// It polls every 2 ms at first, then less often (up to every 20 ms), so
// that a cheap condition is seen at once and a costly one (scraping
// metrics, reading a process's output) does not load a busy machine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, MinWait, what, cond)
}

// WaitWithin is WaitFor for a wait that may take longer than MinWait (a
// process restarting, a large replay); d below MinWait counts as MinWait.
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d = max(d, MinWait)
	deadline := time.Now().Add(d)
	pause := 2 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
