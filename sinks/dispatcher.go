package sinks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// PendingCounter is implemented by outboxes that can count a sink's pending
// entries cheaply; the Dispatcher then exports that count as the
// queue_depth gauge, read at each scrape. The count covers the whole
// outbox, not only the entries the dispatcher has read.
type PendingCounter interface {
	PendingCount(sink string) (int, error)
}

// maxRetryAfter bounds a destination's Retry-After: a bogus value from a
// proxy must not stall the sink for hours.
const maxRetryAfter = 5 * time.Minute

// Dead-letter reasons, bounded for the metric label.
const (
	DeadPermanent   = "permanent"
	DeadExpired     = "expired"
	DeadUndecodable = "undecodable"
)

// Keyed is implemented by sinks that keep alerts in order per key (Kafka:
// the record key). When some of a batch's alerts keep failing while the
// sink takes others, the dispatcher sets them aside and moves on; for a
// Keyed sink it also holds back every later alert with the key of one set
// aside, so that order per key holds. Other sinks promise no order.
type Keyed interface {
	OrderKey(it Item) string
}

// Dispatcher drains one sink's outbox entries into the sink. Create it with
// NewDispatcher and run it with Run.
//
// A failure of the whole sink (a Failed Result) is retried on the same
// batch, in order. Alerts a sink reports failed one by one (Result.Fail)
// are retried in place for up to Config.MaxBackoff, then set
// aside: they stay in the outbox, the dispatcher goes on with the alerts
// after them, and it comes back for them after a backoff, reading the outbox
// again from the first one set aside. So one alert (or one Kafka partition)
// that keeps failing does not hold up the rest of the sink.
type Dispatcher struct {
	sink   Sink
	name   string
	outbox scorer.Outbox
	cfg    Config
	log    zerolog.Logger
	wake   chan struct{}
	// progress is signalled (never blocking) whenever what is left to
	// deliver may have shrunk: alerts acknowledged, dead-lettered or held.
	progress chan struct{}
	now      func() time.Time
	// headerOnly: the sink implements HeaderOnly and reads only headers.
	headerOnly bool
	keyed      Keyed // nil unless the sink keeps order per key
	pacer      Pacer // nil unless the sink paces itself
	aside      setAside
	heldNow    atomic.Int64 // alerts held by the sink (not failing) and not yet read again

	sent, retried         prometheus.Counter
	failed, dead          *prometheus.CounterVec
	latency, sendDuration prometheus.Observer
	inFlight              prometheus.Gauge
	lastErr               string // last logged failure, to log only changes
}

// NewDispatcher returns a Dispatcher that delivers the outbox entries of
// sink.Name() to sink. m is shared by every Dispatcher of one registry.
func NewDispatcher(sink Sink, outbox scorer.Outbox, cfg Config, log zerolog.Logger, m *Metrics) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil || outbox == nil || m == nil {
		return nil, errors.New("new dispatcher: sink, outbox and metrics are required")
	}
	name := sink.Name()
	h, ok := sink.(HeaderOnly)
	keyed, _ := sink.(Keyed)
	pacer, _ := sink.(Pacer)
	if pc, ok := outbox.(PendingCounter); ok {
		m.queueDepth.track(name, pc)
	}
	return &Dispatcher{
		sink: sink, name: name, outbox: outbox, cfg: cfg,
		log:  log.With().Str("component", "sinks").Str("sink", name).Logger(),
		wake: make(chan struct{}, 1), progress: make(chan struct{}, 1),
		now: time.Now,

		headerOnly: ok && h.HeaderOnly(),
		keyed:      keyed,
		pacer:      pacer,
		aside:      setAside{keys: map[string]struct{}{}, failing: map[uint64]struct{}{}},

		sent:         m.sent.WithLabelValues(name),
		retried:      m.retried.WithLabelValues(name),
		failed:       m.failed.MustCurryWith(prometheus.Labels{"sink": name}),
		dead:         m.deadLettered.MustCurryWith(prometheus.Labels{"sink": name}),
		latency:      m.latency.WithLabelValues(name),
		sendDuration: m.sendDuration.WithLabelValues(name),
		inFlight:     m.inFlight.WithLabelValues(name),
	}, nil
}

// Name returns the sink's name.
func (d *Dispatcher) Name() string { return d.name }

// Held returns how many of the sink's pending entries the sink chose to
// send later (Slack follow-ups waiting for their digest): a shutdown need
// not wait for them.
func (d *Dispatcher) Held() int { return int(d.heldNow.Load()) }

// Progress receives when what is left to deliver may have shrunk (alerts
// acknowledged, dead-lettered or held), for a shutdown that waits for the
// outbox to drain without polling it on a timer.
func (d *Dispatcher) Progress() <-chan struct{} { return d.progress }

func (d *Dispatcher) signalProgress() {
	select {
	case d.progress <- struct{}{}:
	default:
	}
}

// Wake tells the dispatcher that new entries may be pending. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers entries until ctx is cancelled, then lets the in-flight send
// finish within Config.ShutdownTimeout and returns nil. Whatever was not
// acknowledged stays in the outbox. Run does not close the sink. Outbox read
// errors are logged (once per distinct error) and retried.
func (d *Dispatcher) Run(ctx context.Context) error {
	var cursor uint64
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	readFailures := 0
	limit := d.cfg.BatchSize
	for ctx.Err() == nil {
		if d.aside.from != 0 && !d.now().Before(d.aside.retryAt) {
			// Held alerts are read back in one batch, so that a digest
			// counts them all.
			limit = min(d.cfg.BatchSize+int(d.heldNow.Swap(0)), 10000)
			// Back for the alerts set aside: the outbox still holds them
			// (and whatever was held back behind them), in order.
			cursor = d.aside.from - 1
			d.aside.from = 0
			clear(d.aside.keys)
		}
		if d.pacer != nil {
			if err := d.pacer.Pace(ctx); err != nil {
				break
			}
		}
		entries, err := d.outbox.Pending(d.name, cursor, limit)
		limit = d.cfg.BatchSize
		if err != nil {
			d.noteFailure(Transient("", fmt.Errorf("read outbox: %w", err)), 0)
			if !sleep(ctx, d.backoff(readFailures)) {
				break
			}
			readFailures++
			continue
		}
		readFailures = 0
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
			case <-d.wake:
			case <-poll.C:
			}
			continue
		}
		cursor = entries[len(entries)-1].Seq
		if !d.deliver(ctx, entries) {
			break
		}
	}
	d.inFlight.Set(0)
	return nil
}

// deliver handles one batch until each entry is acknowledged or
// dead-lettered. It returns false when ctx ended first (the rest stays in the
// outbox).
func (d *Dispatcher) deliver(ctx context.Context, entries []scorer.OutboxEntry) bool {
	items := make([]Item, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		it, err := d.decode(e)
		if err != nil {
			d.deadLetter(*e, DeadUndecodable, fmt.Errorf("decode alert %s: %w", e.AlertID, err))
			continue
		}
		if d.waitsBehind(it) {
			continue
		}
		items = append(items, it)
	}
	d.inFlight.Set(float64(len(items)))
	defer d.inFlight.Set(0)
	return d.sendWithRetry(ctx, items, entries)
}

// decode builds the Item of an outbox entry: the header only for a
// HeaderOnly sink, else the whole alert (whose header DecodeAlertHeader
// would read the same).
//
// The payload goes out as strict JSON: an entry written before alerts
// replaced invalid UTF-8 in the Falco event (scorer.ValidUTF8JSON) is
// repaired here; any other read from disk costs one validation pass and no
// copy. One handed out from memory (with its header) was marshalled by this
// process, so it is strict already.
func (d *Dispatcher) decode(e *scorer.OutboxEntry) (Item, error) {
	it := Item{Payload: e.Payload, Seq: e.Seq, Enqueued: e.Enqueued}
	if e.Header == nil {
		it.Payload = scorer.ValidUTF8JSON(e.Payload)
	}
	if d.headerOnly {
		if e.Header != nil { // handed out from memory with the scorer's header
			it.Header = *e.Header
			return it, nil
		}
		h, err := scorer.DecodeAlertHeader(it.Payload)
		if err != nil {
			return Item{}, err
		}
		it.Header = h
		return it, nil
	}
	a := new(scorer.Alert)
	if err := a.UnmarshalJSON(it.Payload); err != nil {
		return Item{}, err
	}
	it.Header, it.Alert = a.Header(), a
	return it, nil
}

// sendWithRetry delivers items: one retry loop for the batch, then, when
// several items failed permanently together, the same loop for each of them
// alone, so that one bad alert does not dead-letter its neighbours (those
// whose key an earlier one was set aside with wait behind it). It returns
// false when ctx ended first.
func (d *Dispatcher) sendWithRetry(ctx context.Context, items []Item, entries []scorer.OutboxEntry) bool {
	if len(items) == 0 {
		return true
	}
	suspects, ok := d.retry(ctx, items, entries)
	for _, it := range suspects {
		if !ok {
			break
		}
		if d.waitsBehind(it) {
			continue
		}
		_, ok = d.retry(ctx, []Item{it}, entries) // one item is never split
	}
	return ok
}

// retry sends items until each is acknowledged, held, dead-lettered or set
// aside, deciding once per Send on its Result (Result.Decision): delivered items
// are acknowledged and held ones left for later, then the failed ones are
// sent again at once (deferred), dead-lettered (permanent: one alone; several
// are returned as suspects for the caller to send one by one), or retried
// after a pause until they expire or, failing one by one for max_backoff,
// are set aside. ok is false when ctx ended first.
func (d *Dispatcher) retry(ctx context.Context, items []Item, entries []scorer.OutboxEntry) (suspects []Item, ok bool) {
	var failingSince time.Time // first time these items failed one by one
	deferred := false          // the last Send left items for the next one
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !deferred {
			d.retried.Add(float64(len(items)))
		}
		deferred = false
		r := d.send(ctx, items)
		failed, failure := d.settle(r, items)
		if len(failed) == 0 {
			return nil, true
		}
		if failure == StatusDeferred {
			if ctx.Err() != nil {
				return nil, false // shutting down: the rest stays in the outbox
			}
			// Not a retry: the sink went as far as its send budget allowed.
			items, deferred = failed, true
			attempt--
			continue
		}
		d.failed.WithLabelValues(r.Cause.Reason).Add(float64(len(failed)))
		if failure == StatusPermanent {
			if len(failed) > 1 {
				return failed, true
			}
			d.deadLetter(entryOf(failed[0], entries), DeadPermanent, r.Cause.Err)
			return nil, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		d.noteFailure(r.Cause, len(failed))
		now := d.now()
		if items = d.expire(failed, entries, now, r.Cause.Err); len(items) == 0 {
			return nil, true
		}
		if r.PerItem && d.asideDue(&failingSince, now, items) {
			d.setAside(items, r.Cause.Err)
			return nil, true
		}
		if !sleep(ctx, d.pause(r.Cause.RetryAfter, attempt)) {
			return nil, false
		}
	}
}

// settle acknowledges the items r says were delivered and leaves the held
// ones in the outbox; it returns the rest, which failed, and what to do
// with them (Result.Decision).
func (d *Dispatcher) settle(r Result, items []Item) (failed []Item, failure Status) {
	d.ack(r.Items(items, StatusDelivered))
	if held := r.Items(items, StatusHeld); len(held) > 0 {
		d.hold(held, r.HeldUntil)
	}
	failure = r.Decision()
	if failure == StatusDelivered { // nothing failed
		if r.Count(StatusDelivered) > 0 {
			d.noteRecovery()
		}
		return nil, failure
	}
	return r.FailedItems(items), failure
}

// asideDue reports whether items, failing one by one since *since (now,
// the first time), must be set aside: they failed for max_backoff, or fail
// again after being set aside before.
func (d *Dispatcher) asideDue(since *time.Time, now time.Time, items []Item) bool {
	if since.IsZero() {
		*since = now
	}
	return now.Sub(*since) >= d.cfg.MaxBackoff || d.aside.failingAgain(items)
}

// expire dead-letters the items enqueued Config.MaxRetryTime or longer
// before now and returns the rest.
func (d *Dispatcher) expire(items []Item, entries []scorer.OutboxEntry, now time.Time, cause error) []Item {
	rest := items[:0:0]
	for _, it := range items {
		if now.Sub(it.Enqueued) >= d.cfg.MaxRetryTime {
			d.deadLetter(entryOf(it, entries), DeadExpired,
				fmt.Errorf("not delivered %s after enqueue: %w", d.cfg.MaxRetryTime, cause))
			continue
		}
		rest = append(rest, it)
	}
	return rest
}

// send runs one Send and checks its Result. The attempt is not
// cancelled with ctx at once: on shutdown it gets Config.ShutdownTimeout
// more to finish.
func (d *Dispatcher) send(ctx context.Context, items []Item) Result {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.SendTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(d.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(sctx, func() { t.Stop() })
	})
	defer stop()
	start := time.Now()
	r := d.sink.Send(sctx, items)
	d.sendDuration.Observe(time.Since(start).Seconds())
	return r.checked(d.name, len(items))
}

func (d *Dispatcher) ack(items []Item) {
	if len(items) == 0 {
		return
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	if err := d.outbox.Ack(d.name, seqs); err != nil {
		// The destination has the alerts; they stay in the outbox and are
		// sent again after a restart (a duplicate, never a loss).
		d.log.Error().Err(err).Int("alerts", len(seqs)).Msg("acknowledge delivered alerts")
		return
	}
	d.signalProgress()
	now := d.now()
	d.sent.Add(float64(len(items)))
	for _, it := range items {
		d.latency.Observe(now.Sub(it.Enqueued).Seconds())
		d.aside.resolved(it.Seq)
	}
}

func (d *Dispatcher) deadLetter(e scorer.OutboxEntry, reason string, cause error) {
	d.aside.resolved(e.Seq)
	d.dead.WithLabelValues(reason).Inc()
	msg := reason + ": " + cause.Error()
	if err := d.outbox.DeadLetter(e, msg); err != nil {
		d.log.Error().Err(err).Str("alert_id", e.AlertID).Msg("move alert to dead letters")
		return
	}
	d.signalProgress()
	d.log.Warn().Str("alert_id", e.AlertID).Str("reason", reason).Str("error", cause.Error()).
		Msg("alert moved to dead letters")
}

// noteFailure logs a failure only when it differs from the previous one.
func (d *Dispatcher) noteFailure(f *Failure, n int) {
	msg := f.Err.Error()
	if msg == d.lastErr {
		return
	}
	d.lastErr = msg
	d.log.Warn().Err(f.Err).Str("reason", f.Reason).Int("alerts", n).Msg("delivery failing, will retry")
}

func (d *Dispatcher) noteRecovery() {
	if d.lastErr == "" {
		return
	}
	d.lastErr = ""
	d.log.Info().Msg("delivery recovered")
}

// pause is retryAfter when the destination asked for one (at most
// maxRetryAfter), else the backoff before retry attempt+1.
func (d *Dispatcher) pause(retryAfter time.Duration, attempt int) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	return d.backoff(attempt)
}

// backoff returns the jittered exponential pause before retry attempt+1:
// uniformly in [b/2, b) with b = InitialBackoff·2^attempt capped at MaxBackoff.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.cfg.InitialBackoff
	for i := 0; i < attempt && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.cfg.MaxBackoff)
	half := b / 2
	return half + rand.N(b-half+1)
}

func entryOf(it Item, entries []scorer.OutboxEntry) scorer.OutboxEntry {
	for _, e := range entries {
		if e.Seq == it.Seq {
			return e
		}
	}
	return scorer.OutboxEntry{Seq: it.Seq, AlertID: it.Header.ID, Payload: it.Payload, Enqueued: it.Enqueued}
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
