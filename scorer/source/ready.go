package source

import (
	"sync"
	"sync/atomic"
)

// readiness is an input's "accepting events" state: Ready for probes, and
// Started for whoever waits for the first time it became ready, without
// polling.
type readiness struct {
	ready   atomic.Bool
	once    sync.Once
	started chan struct{}
}

func newReadiness() readiness { return readiness{started: make(chan struct{})} }

func (r *readiness) set(ready bool) {
	r.ready.Store(ready)
	if ready {
		r.once.Do(func() { close(r.started) })
	}
}

// Ready reports whether the input accepts events now.
func (r *readiness) Ready() bool { return r.ready.Load() }

// Started is closed the first time the input accepts events.
func (r *readiness) Started() <-chan struct{} { return r.started }
