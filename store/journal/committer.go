package journal

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxQueuedBytes bounds the events waiting for the committer; beyond it
// Append answers ErrOverloaded instead of growing memory.
const maxQueuedBytes = 64 << 20

// appendReq is one Append call waiting for its group commit.
type appendReq struct {
	ctx   context.Context
	raws  [][]byte
	bytes int
	seqs  []uint64
	err   error
	done  chan struct{}
}

// committer writes records, one writer at a time (wmu). Append queues a
// request; the committer goroutine takes everything queued (up to the
// group limits), writes it with one pwrite, syncs once (strict mode), and
// releases all callers. Requests queue while a write runs, so groups grow
// with load by themselves. A lone appender (nothing queued, no write
// running, the last group a single call) writes its own group instead: that
// saves two goroutine hand-offs on the acknowledgement path of one Falco,
// which sends one event and waits for the answer (they were ~a third of
// the ingest latency at one connection with the background sync).
type committer struct {
	l *Log

	// wmu is held by whoever writes a group (the committer goroutine or a
	// lone appender); it orders sequences and segment writes, and guards
	// the fields below "Owned by the writer".
	wmu sync.Mutex

	mu          sync.Mutex
	queue       []*appendReq
	queuedBytes int
	stopped     bool
	lastGroup   int // Append calls in the latest group

	wake chan struct{} // capacity 1: "the queue is not empty"

	// Owned by the writer (wmu).
	next    uint64   // next sequence
	failing string   // reason of the current failure, "" while healthy
	raws    [][]byte // reused group buffer

	// The free-space guard's latest reading (see checkFree).
	freeAt       time.Time
	freeBytes    uint64
	writtenSince int64 // bytes written since freeAt
}

// A statfs per group commit cost ~5 µs, 3 % of the service's CPU when
// groups are small; the guard reads the free space again only after this
// long or this many journal bytes, and at every group while it is low.
const (
	freeCheckInterval = 100 * time.Millisecond
	freeCheckBytes    = 1 << 20
)

func newCommitter(l *Log, next uint64) *committer {
	return &committer{l: l, next: next, wake: make(chan struct{}, 1)}
}

// waitWriter returns once a lone appender still writing its own group has
// finished; run by the lifecycle after the committer goroutine returned.
func (c *committer) waitWriter() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
}

// append queues r, or writes it at once when it is alone.
func (c *committer) append(r *appendReq) ([]uint64, error) {
	c.mu.Lock()
	switch {
	case c.stopped:
		c.mu.Unlock()
		c.l.m.Refused.WithLabelValues(ReasonClosed).Add(float64(len(r.raws)))
		return nil, ErrClosed
	case c.queuedBytes+r.bytes > maxQueuedBytes && len(c.queue) > 0:
		c.mu.Unlock()
		return nil, ErrOverloaded
	}
	if len(c.queue) == 0 && c.lastGroup <= 1 && c.wmu.TryLock() {
		// Alone: write the group here, without waking the committer.
		c.lastGroup = 1
		c.mu.Unlock()
		c.commit([]*appendReq{r})
		c.wmu.Unlock()
		c.mu.Lock()
		more := len(c.queue) > 0
		c.mu.Unlock()
		if more { // queued behind this write: the committer takes them
			c.signal()
		}
		return r.seqs, r.err
	}
	c.queue = append(c.queue, r)
	c.queuedBytes += r.bytes
	c.mu.Unlock()
	c.signal()
	select {
	case <-r.done:
		return r.seqs, r.err
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
}

func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is the committer goroutine. Once quit is closed, later Appends fail
// with ErrClosed and what is queued is written before it returns.
func (c *committer) run(quit <-chan struct{}) {
	for {
		select {
		case <-c.wake:
		case <-quit:
			c.mu.Lock()
			c.stopped = true
			c.mu.Unlock()
			for c.commitQueued() {
			}
			return
		}
		// Linger only when appends are concurrent (the last group had
		// several): a lone appender gains nothing from waiting.
		c.mu.Lock()
		last := c.lastGroup
		c.mu.Unlock()
		if delay := c.l.opts.GroupCommitMaxDelay; delay > 0 && last > 1 {
			c.linger(delay, last, quit)
		}
		for c.commitQueued() {
		}
	}
}

// linger waits up to delay for as many appenders as the last group had
// (the callers it released usually come back with their next events), or
// for a whole group. Waiting for the expected callers rather than for the
// delay matters: the Go runtime rounds a sub-millisecond timer up to about
// 1 ms when the process is otherwise idle, so a fixed 150 µs linger took
// ~1.1 ms and halved the rate of 2 to 4 concurrent senders.
func (c *committer) linger(delay time.Duration, expected int, quit <-chan struct{}) {
	opts := &c.l.opts
	deadline := time.NewTimer(delay)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		full := len(c.queue) >= expected || len(c.queue) >= opts.GroupCommitMaxEvents || c.queuedBytes >= opts.GroupCommitMaxBytes
		c.mu.Unlock()
		if full {
			return
		}
		select {
		case <-c.wake:
		case <-deadline.C:
			return
		case <-quit:
			return
		}
	}
}

// commitQueued commits one group from the head of the queue and reports
// whether requests remain.
func (c *committer) commitQueued() bool {
	opts := &c.l.opts
	// Taken before the group, so that a lone appender's write (which
	// holds it) lands first and the group is formed after it.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	var n, events, bytes int
	for n < len(c.queue) {
		r := c.queue[n]
		if n > 0 && (events+len(r.raws) > opts.GroupCommitMaxEvents || bytes+r.bytes > opts.GroupCommitMaxBytes) {
			break
		}
		events += len(r.raws)
		bytes += r.bytes
		n++
	}
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.lastGroup = n
	c.queuedBytes -= bytes
	more := len(c.queue) > 0
	c.mu.Unlock()
	if n > 0 {
		c.commit(group)
	}
	return more
}

func (c *committer) commit(group []*appendReq) {
	l := c.l
	live := group[:0]
	var events int
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
		events += len(r.raws)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	if err := c.write(live, events); err != nil {
		c.failed(live, events, err)
		return
	}
	if c.failing != "" {
		l.log.Info().Str("previous_reason", c.failing).Msg("journal writes recovered")
		c.failing = ""
		l.m.Unavailable.Set(0)
	}
	l.m.Commits.Inc()
	l.m.CommitEvents.Observe(float64(events))
	l.m.CommitSeconds.Observe(time.Since(start).Seconds())
	l.m.Appended.Add(float64(events))
	l.m.Outstanding.Add(float64(events))
	for _, r := range live {
		close(r.done)
	}
}

// failed releases a group whose write failed, with one WriteError.
func (c *committer) failed(live []*appendReq, events int, cause error) {
	l := c.l
	reason := l.opts.Classify(cause)
	err := &WriteError{Reason: reason, Err: cause}
	l.m.Refused.WithLabelValues(reason).Add(float64(events))
	l.m.Unavailable.Set(1)
	if c.failing != reason {
		// Logged once per kind of failure, not per event.
		l.log.Error().Err(err).Str("reason", reason).Str("dir", l.opts.DiskDir).
			Msg("journal cannot persist events; ingest answers 503 until this clears")
		c.failing = reason
	}
	for _, r := range live {
		r.err = err
		close(r.done)
	}
}

// write appends the group's events to the active segment and syncs it
// (one write, one fdatasync). Sequences are numbered by the committer and
// never reused, even when the write fails.
func (c *committer) write(group []*appendReq, events int) error {
	l := c.l
	if l.wal != nil && l.opts.MinFreeBytes > 0 {
		size := 0
		for _, r := range group {
			size += r.bytes
		}
		if err := c.checkFree(size); err != nil {
			return err
		}
	}
	first := c.next
	c.next += uint64(events)
	raws := c.raws[:0]
	for _, r := range group {
		r.seqs = make([]uint64, len(r.raws))
		for i := range r.raws {
			r.seqs[i] = first + uint64(len(raws)+i)
		}
		raws = append(raws, r.raws...)
	}
	defer func() {
		clear(raws) // do not keep the group's events alive
		c.raws = raws[:0]
	}()
	if l.mem != nil {
		l.mem.add(first, raws)
		return nil
	}
	// With a sync interval the background syncer makes the group durable
	// later; once it failed, groups sync here (Sync).
	sync := l.opts.SyncInterval == 0 || l.syncFailed.Load()
	rotated, err := l.wal.appendGroup(raws, first, sync)
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if rotated {
		l.wakeRetirer() // a spare was used: prepare the next one
	}
	return nil
}

// checkFree refuses a group of n bytes while the file system holding
// DiskDir has less than MinFreeBytes free.
func (c *committer) checkFree(n int) error {
	opts := &c.l.opts
	need := uint64(opts.MinFreeBytes)
	now := time.Now()
	if c.freeAt.IsZero() || c.freeBytes < need || now.Sub(c.freeAt) >= freeCheckInterval || c.writtenSince+int64(n) >= freeCheckBytes {
		free, err := opts.DiskFree(opts.DiskDir)
		if err != nil {
			// Not fatal here: the write itself will tell. Read again next time.
			c.freeAt = time.Time{}
			return nil
		}
		c.freeAt, c.freeBytes, c.writtenSince = now, free, 0
	}
	if c.freeBytes < need {
		return fmt.Errorf("%w: %d bytes free in %s, need %d", ErrLowDisk, c.freeBytes, opts.DiskDir, need)
	}
	c.writtenSince += int64(n)
	return nil
}
