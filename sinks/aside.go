package sinks

import "time"

// This file holds what the Dispatcher leaves in the outbox to come back to
// later: alerts set aside after failing one by one while others get
// through, alerts a Keyed sink must hold back behind them, and alerts the
// sink held (Slack digests). Run reads the outbox again from the lowest of
// them (setAside.from) once setAside.retryAt has come.

// setAside remembers the alerts left in the outbox after failing one by one.
type setAside struct {
	from    uint64              // lowest sequence set aside; 0: none
	keys    map[string]struct{} // their order keys (Keyed sinks)
	retryAt time.Time           // when to read the outbox again from from
	// failing holds the sequences that failed one by one and were set
	// aside, until they are delivered or dead-lettered. One failing again
	// after a rewind is set aside at once, without max_backoff of retries
	// in place that would hold up the rest of the sink.
	failing map[uint64]struct{}
	rounds  int // rewinds since the failing alerts last went through, for the backoff
}

func (s *setAside) add(seq uint64, key string, keyed bool) {
	if s.from == 0 || seq < s.from {
		s.from = seq
	}
	if keyed {
		s.keys[key] = struct{}{}
	}
}

// retryNoLaterThan makes the next rewind come at t at the latest (fresh:
// nothing was set aside before, so any earlier time is stale).
func (s *setAside) retryNoLaterThan(t time.Time, fresh bool) {
	if fresh || t.Before(s.retryAt) {
		s.retryAt = t
	}
}

// failingAgain reports whether one of items was set aside before for
// failing: it fails again after a rewind.
func (s *setAside) failingAgain(items []Item) bool {
	for _, it := range items {
		if _, ok := s.failing[it.Seq]; ok {
			return true
		}
	}
	return false
}

// resolved forgets seq as failing (delivered or dead-lettered); once none
// is left, the next episode's rewinds start from the shortest backoff.
func (s *setAside) resolved(seq uint64) {
	if _, ok := s.failing[seq]; !ok {
		return
	}
	delete(s.failing, seq)
	if len(s.failing) == 0 {
		s.rounds = 0
	}
}

// held reports whether it must wait behind an alert set aside with its key.
func (s *setAside) held(key string) bool {
	_, ok := s.keys[key]
	return ok
}

// waitsBehind reports whether it must wait behind an alert of its key set
// aside before (Keyed sinks), and if so leaves it in the outbox too.
func (d *Dispatcher) waitsBehind(it Item) bool {
	if d.keyed == nil || len(d.aside.keys) == 0 {
		return false
	}
	k := d.keyed.OrderKey(it)
	if !d.aside.held(k) {
		return false
	}
	d.aside.add(it.Seq, k, true)
	return true
}

// leave records items as left in the outbox for Run to read again, and
// reports whether nothing was left there before.
func (d *Dispatcher) leave(items []Item) (fresh bool) {
	fresh = d.aside.from == 0
	for _, it := range items {
		key := ""
		if d.keyed != nil {
			key = d.keyed.OrderKey(it)
		}
		d.aside.add(it.Seq, key, d.keyed != nil)
	}
	return fresh
}

// hold leaves items the sink chose not to send yet in the outbox; Run reads
// them again from until on (or earlier, for alerts set aside before).
func (d *Dispatcher) hold(items []Item, until time.Time) {
	fresh := d.leave(items)
	d.heldNow.Add(int64(len(items)))
	d.signalProgress()
	d.aside.retryNoLaterThan(until, fresh)
}

// setAside leaves items in the outbox and moves on; Run reads them again
// after a backoff.
func (d *Dispatcher) setAside(items []Item, cause error) {
	again := d.aside.failingAgain(items)
	fresh := d.leave(items)
	for _, it := range items {
		d.aside.failing[it.Seq] = struct{}{}
	}
	wait := d.backoff(d.aside.rounds)
	d.aside.rounds++
	d.aside.retryNoLaterThan(d.now().Add(wait), fresh)
	lvl := d.log.Warn() // once an episode; each later rewind at debug
	if again {
		lvl = d.log.Debug()
	}
	lvl.Err(cause).Int("alerts", len(items)).Dur("retry_in", wait).
		Msg("alerts keep failing while others get through: set aside, delivering the rest")
}
