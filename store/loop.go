package store

import "sync"

// loop is one background goroutine of an open DB (the journal syncer, the
// segment retirer): started once, stopped once, however many times Close
// runs.
type loop struct {
	quit chan struct{} // closed by stop: the goroutine returns
	done chan struct{} // closed when the goroutine has returned
	once sync.Once
}

// startLoop runs run in a goroutine; run must return soon after quit is
// closed.
func startLoop(run func(quit <-chan struct{})) *loop {
	l := &loop{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		run(l.quit)
	}()
	return l
}

// stop asks the goroutine to return and waits for it. The first call then
// runs final (when not nil) before any call returns, so a concurrent second
// Close cannot overtake the first one's last step.
func (l *loop) stop(final func()) {
	l.once.Do(func() {
		close(l.quit)
		<-l.done
		if final != nil {
			final()
		}
	})
	<-l.done
}
