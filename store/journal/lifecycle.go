package journal

import "sync"

// lifecycle owns the log's goroutines (the retirer, the background syncer,
// the committer): it starts them in order and stops them in reverse, once,
// however many times Close runs.
type lifecycle struct {
	loops []*loop
	once  sync.Once
}

// loop is one goroutine of the lifecycle.
type loop struct {
	quit  chan struct{} // closed by stop: run returns
	done  chan struct{} // closed when run has returned
	final func()        // run after run returned (may be nil)
}

// start runs run in a goroutine until stop; run must return soon after
// quit is closed. final, when not nil, runs once run has returned, before
// the loops started earlier are stopped.
func (lc *lifecycle) start(run func(quit <-chan struct{}), final func()) {
	l := &loop{quit: make(chan struct{}), done: make(chan struct{}), final: final}
	lc.loops = append(lc.loops, l)
	go func() {
		defer close(l.done)
		run(l.quit)
	}()
}

// stop stops the loops, the last started first, each with its final step.
// A concurrent or later call returns once the first one has finished, so a
// second Close cannot overtake the first one's last step.
func (lc *lifecycle) stop() {
	lc.once.Do(func() {
		for i := len(lc.loops) - 1; i >= 0; i-- {
			l := lc.loops[i]
			close(l.quit)
			<-l.done
			if l.final != nil {
				l.final()
			}
		}
	})
}
