package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// Deps are the pipeline's collaborators.
type Deps struct {
	Journal   scorer.Journal   // required
	Baselines scorer.Baselines // nil: baselines live in memory only
	Decider   scorer.Decider   // nil: keep priority, send to every sink
	Sinks     []string         // names of the configured sinks (the default route)
	Wake      func()           // called after alerts reach the outbox; may be nil
	// Backlogged reports that the outbox is full (sinks are behind); Accept
	// then refuses events with ErrBacklogged. nil: never.
	Backlogged func() bool
	Now        func() time.Time // nil: time.Now
	// OnScored, when set, is called by the worker that scored an
	// observation (and at each process's end) with what it decided: eval
	// measures the service's own pipeline through it. It must be quick and
	// safe for concurrent use (workers call it in parallel).
	OnScored func(Scored)
	// OnGraduated, when set, is called by the worker whose image's
	// baseline just graduated from learning to monitoring: the demo
	// narrates it. Same rules as OnScored.
	OnGraduated func(Graduated)
}

// Graduated is one image's baseline leaving learning for monitoring.
type Graduated struct {
	Image        string
	Events       uint64  // events the baseline had learned
	Threshold    float64 // the image's calibrated online threshold
	EndThreshold float64 // its calibrated end-of-sequence threshold
}

// Scored is one scoring decision of the pipeline, for evaluation.
type Scored struct {
	Image        string
	ContainerID  string
	PID          int64
	PPID         int64     // the parent's pid, when Falco sent it
	Time         time.Time // the event's
	Symbol       string    // "" at a process's end
	Learning     bool      // the image's baseline was learning
	Surprise     float64   // -log2 P(symbol | history), bits
	Window       float64   // the online score after this event
	Ready        bool      // the window may alert (warmed up)
	Threshold    float64   // the image's online threshold (+Inf until calibrated)
	End          bool      // the process ended: EndScore is its whole-trace score
	EndScore     float64
	EndJudged    bool    // the end verdict was taken (monitoring, calibrated, long enough)
	EndThreshold float64 // +Inf until calibrated
	Alerted      bool    // an anomaly alert was raised at this event
	ModelBytes   int     // the image's model's approximate memory after this event
	Transitions  int     // its distinct full-order transitions
}

// Pipeline scores accepted events and writes the resulting alerts to the
// outbox. It implements Acceptor. Work is sharded by image across workers:
// one image's model and sequences belong to one goroutine, so scoring takes
// no locks; the only shared state is the container→image cache.
type Pipeline struct {
	cfg   Config
	deps  Deps
	log   zerolog.Logger
	met   *metrics
	cache *imageCache
	seed  maphash.Seed
	// symbols turns observations into the model's symbols.
	symbols   *symbol.Symbolizer
	symbolsID string // its Fingerprint, stored with each baseline

	workers  []*worker
	repos    sync.Map     // repository → latest image key seen (baseline inheritance)
	inflight atomic.Int64 // accepted, not yet committed to the outbox
	ready    chan struct{}
	started  atomic.Bool
}

// item is one accepted event on its way through a worker.
type item struct {
	seq       uint64
	journaled bool // seq names a journal entry to complete
	ev        scorer.Event
	subj      scorer.Subject
}

// New builds a pipeline. Call Run to start it, and feed it only after Ready
// is closed (the journal is replayed first).
func New(cfg Config, deps Deps, log zerolog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Journal == nil {
		return nil, errors.New("pipeline: journal required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Wake == nil {
		deps.Wake = func() {}
	}
	syms, err := symbol.New(cfg.Symbols)
	if err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	p := &Pipeline{
		symbols: syms, symbolsID: cfg.Symbols.Fingerprint(),
		cfg:   cfg,
		deps:  deps,
		log:   log.With().Str("component", "pipeline").Logger(),
		met:   newMetrics(reg),
		cache: newImageCache(cfg.ContainerCache),
		seed:  maphash.MakeSeed(),
		ready: make(chan struct{}),
	}
	for i := 0; i < cfg.Workers; i++ {
		p.workers = append(p.workers, newWorker(p, i))
	}
	p.met.queueCapacity.Set(float64(cfg.QueueSize))
	return p, nil
}

// Ready is closed once stored baselines are loaded and the journal replayed;
// inputs should start listening only then.
func (p *Pipeline) Ready() <-chan struct{} { return p.ready }

// Accept journals events durably and queues them for scoring. It returns
// ErrOverloaded, without journaling anything, when the queue is full, and
// ErrTooLarge when an event is larger than the journal takes.
func (p *Pipeline) Accept(ctx context.Context, source string, events []scorer.Event) error {
	if len(events) == 0 {
		return nil
	}
	n := int64(len(events))
	if p.deps.Backlogged != nil && p.deps.Backlogged() {
		p.met.overloaded.WithLabelValues(source).Add(float64(n))
		return scorer.ErrBacklogged
	}
	if p.inflight.Add(n) > int64(p.cfg.QueueSize) {
		p.inflight.Add(-n)
		p.met.overloaded.WithLabelValues(source).Add(float64(n))
		return scorer.ErrOverloaded
	}
	raws := make([][]byte, len(events))
	for i := range events {
		if len(events[i].Raw) == 0 {
			b, err := events[i].EncodeJSON()
			if err != nil {
				p.inflight.Add(-n)
				return fmt.Errorf("encode event: %w", err)
			}
			events[i].Raw = b
		}
		raws[i] = events[i].Raw
	}
	seqs, err := p.deps.Journal.Append(ctx, raws)
	if err != nil {
		p.inflight.Add(-n)
		if !errors.Is(err, scorer.ErrUnavailable) && !errors.Is(err, scorer.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", scorer.ErrUnavailable, err)
		}
		return err
	}
	for i := range events {
		p.dispatch(item{seq: seqs[i], journaled: true, ev: events[i]})
	}
	p.met.accepted.WithLabelValues(source).Add(float64(n))
	return nil
}

// AcceptUnjournaled queues events without journaling them, for inputs that
// are durable themselves (a file being replayed: after a crash it is simply
// replayed again, and the alerts' stable ids let consumers drop
// duplicates). Their alerts still go through the durable outbox. It waits
// for room instead of answering ErrOverloaded.
func (p *Pipeline) AcceptUnjournaled(ctx context.Context, source string, events []scorer.Event) error {
	if half := max(p.cfg.QueueSize/2, 1); len(events) > half {
		for len(events) > 0 {
			k := min(half, len(events))
			if err := p.AcceptUnjournaled(ctx, source, events[:k]); err != nil {
				return err
			}
			events = events[k:]
		}
		return nil
	}
	n := int64(len(events))
	for p.deps.Backlogged != nil && p.deps.Backlogged() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	for p.inflight.Add(n) > int64(p.cfg.QueueSize) {
		p.inflight.Add(-n)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	for i := range events {
		if len(events[i].Raw) == 0 {
			b, err := events[i].EncodeJSON()
			if err != nil {
				p.inflight.Add(-1)
				continue
			}
			events[i].Raw = b
		}
		p.dispatch(item{ev: events[i]})
	}
	p.met.accepted.WithLabelValues(source).Add(float64(n))
	return nil
}

// dispatch enriches the event and hands it to the worker that owns its image.
// Worker channels hold QueueSize items each, and at most QueueSize are in
// flight, so this never blocks.
func (p *Pipeline) dispatch(it item) {
	it.subj = enrich(&it.ev, p.cfg.ImageKey, p.cache)
	if it.subj.ImageSource == "container" || it.subj.ImageSource == "host" {
		p.met.missingImage.Inc()
	}
	w := p.workers[maphash.String(p.seed, it.subj.Image)%uint64(len(p.workers))]
	w.ch <- it
}

// Run loads baselines, replays the journal, then scores until ctx is
// cancelled. On cancel it drains every queued event, commits, flushes the
// baselines and returns: stop the inputs before cancelling.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("pipeline: already running")
	}
	start := time.Now()
	if err := p.loadBaselines(); err != nil {
		return err
	}
	loaded := time.Since(start)

	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	replayed, err := p.replay(ctx)
	if err != nil {
		p.log.Error().Err(err).Msg("journal replay stopped")
	}
	p.log.Info().Dur("baselines_load", loaded).Int("replayed", replayed).
		Int("images", p.imageCount()).Msg("pipeline ready")
	close(p.ready)
	wg.Wait()
	return nil
}

// replay re-queues journal entries left by a previous run (accepted but not
// yet in the outbox when it stopped).
func (p *Pipeline) replay(ctx context.Context) (int, error) {
	n := 0
	err := p.deps.Journal.Replay(func(seq uint64, raw []byte) error {
		ev, err := scorer.DecodeJSON(raw)
		if err != nil {
			// Journal entries were validated when accepted; a bad one is
			// completed without alerts so it cannot block the journal.
			p.log.Error().Err(err).Uint64("seq", seq).Msg("dropping undecodable journal entry")
			return p.deps.Journal.Complete([]uint64{seq}, nil)
		}
		for p.inflight.Load() >= int64(p.cfg.QueueSize) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		p.inflight.Add(1)
		p.dispatch(item{seq: seq, journaled: true, ev: ev})
		n++
		return nil
	})
	p.met.replayed.Add(float64(n))
	return n, err
}

// Replace runs write, a change of image's stored baseline (an admin import
// or reset), on the worker that owns image, after dropping the image from
// memory with the counts it has not flushed yet: no flush can interleave
// with write, and the image's next event loads what write stored. It
// returns write's error, or ctx's when the worker did not take it in time.
func (p *Pipeline) Replace(ctx context.Context, image string, write func() error) error {
	w := p.workers[maphash.String(p.seed, image)%uint64(len(p.workers))]
	done := make(chan error, 1)
	select {
	case w.ctl <- func() {
		w.forget(image)
		w.dropUnflushed(image)
		done <- write()
	}:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The worker took it and runs it now: its outcome is the answer, even
	// past ctx (returning ctx's error would report a write that happened
	// as failed).
	return <-done
}

func (p *Pipeline) imageCount() int {
	n := 0
	for _, w := range p.workers {
		n += int(w.imageCount.Load())
	}
	return n
}

// loadBaselines reads stored baselines within the horizon into the workers.
func (p *Pipeline) loadBaselines() error {
	if p.deps.Baselines == nil {
		return nil
	}
	now := p.deps.Now()
	since := p.horizonStart(now)
	return p.deps.Baselines.LoadBaselines(since, func(image string, meta []byte, buckets []scorer.BaselineBucket) error {
		w := p.workers[maphash.String(p.seed, image)%uint64(len(p.workers))]
		img, err := w.restoreImage(image, meta, buckets, since)
		if err != nil {
			// One corrupt baseline must not stop the service: it relearns.
			p.log.Error().Err(err).Str("image", scorer.TruncateForLog(image)).Msg("discarding unreadable baseline")
			return nil
		}
		w.addImage(img)
		return nil
	})
}

func (p *Pipeline) horizonStart(now time.Time) time.Time { return p.cfg.horizonStart(now) }

// metrics of the pipeline; labels stay bounded (source, kind, reason).
type metrics struct {
	accepted      *prometheus.CounterVec
	overloaded    *prometheus.CounterVec
	scored        *prometheus.CounterVec
	alerts        *prometheus.CounterVec
	suppressed    *prometheus.CounterVec
	missingImage  prometheus.Counter
	replayed      prometheus.Counter
	queueCapacity prometheus.Gauge
	sequences     prometheus.Gauge
	evicted       *prometheus.CounterVec
	images        *prometheus.GaugeVec
	graduated     prometheus.Counter
	expired       *prometheus.CounterVec
	imagesEvicted prometheus.Counter
	heldBack      prometheus.Counter
	folded        prometheus.Counter
	commitErrors  prometheus.Counter
	flushErrors   prometheus.Counter
	oov           prometheus.Counter
	scoreSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "falco_scorer"
	m := &metrics{
		accepted:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_accepted_total", Help: "Events journaled and queued for scoring, by source."}, []string{"source"}),
		overloaded:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_overloaded_total", Help: "Events refused because the queue was full, by source."}, []string{"source"}),
		scored:        prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_scored_total", Help: "Events processed by the pipeline, by kind (observation, falco)."}, []string{"kind"}),
		alerts:        prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "alerts_total", Help: "Alerts written to the outbox, by kind and final priority."}, []string{"kind", "priority"}),
		suppressed:    prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "alerts_suppressed_total", Help: "Alerts dropped by the rules, by kind."}, []string{"kind"}),
		missingImage:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_without_image_total", Help: "Events keyed by container id or host because no image was known."}),
		replayed:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "journal_replayed_total", Help: "Journal entries replayed at start-up."}),
		queueCapacity: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "queue_capacity", Help: "Events that may be in flight before ingest answers 429."}),
		sequences:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "sequences_live", Help: "Live syscall sequences tracked."}),
		evicted:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sequences_closed_total", Help: "Sequences closed, by reason (exit, idle, capacity)."}, []string{"reason"}),
		images:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "images", Help: "Images with a live baseline, by state."}, []string{"state"}),
		graduated:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "baselines_graduated_total", Help: "Baselines that moved from learning to monitoring."}),
		expired:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "baselines_expired_total", Help: "Baselines that moved from monitoring back to learning because the rolling horizon left them fewer events than graduation needs, by reason (load, horizon)."}, []string{"reason"}),
		imagesEvicted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "images_evicted_total", Help: "Image baselines moved out of memory to stay within max_images (reloaded from the store on their next event)."}),
		heldBack:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_held_back_total", Help: "Events not learned because their sequence was anomalous (poisoning guard)."}),
		folded:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "alarms_folded_total", Help: "Alarms of a process on a step it already alerted on within repeat_interval: no new alert."}),
		commitErrors:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "outbox_commit_errors_total", Help: "Failed journal→outbox commits (retried)."}),
		flushErrors:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "baseline_flush_errors_total", Help: "Failed baseline flushes (retried at the next interval)."}),
		oov:           prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "symbols_out_of_vocabulary_total", Help: "Events whose symbol did not fit an image's vocabulary cap."}),
		scoreSeconds:  prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "commit_seconds", Help: "Time to commit a batch of scored events to the outbox.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.overloaded, m.scored, m.alerts, m.suppressed, m.missingImage, m.replayed,
			m.queueCapacity, m.sequences, m.evicted, m.images, m.graduated, m.expired, m.imagesEvicted, m.heldBack, m.folded, m.commitErrors, m.flushErrors,
			m.oov, m.scoreSeconds)
	}
	return m
}
