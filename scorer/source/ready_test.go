package source

import "testing"

// TestReadiness: Started closes the first time the input becomes ready,
// and only then; Ready follows every change.
func TestReadiness(t *testing.T) {
	r := newReadiness()
	closed := func() bool {
		select {
		case <-r.Started():
			return true
		default:
			return false
		}
	}
	r.set(false)
	if closed() || r.Ready() {
		t.Fatal("started before ever ready")
	}
	r.set(true)
	if !closed() || !r.Ready() {
		t.Fatal("not started once ready")
	}
	r.set(false)
	r.set(true) // a second time: no double close
	r.set(false)
	if !closed() || r.Ready() {
		t.Fatalf("after losing readiness: started %v (want true), ready %v (want false)", closed(), r.Ready())
	}
}
