package pipeline

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// worker owns a shard of images: their models, their sequences and the
// anomaly state of their containers. Only its goroutine touches them.
type worker struct {
	// What the pipeline hands each worker at its start and never changes:
	// the worker reads its own copies instead of reaching into the
	// pipeline.
	cfg       Config
	deps      Deps
	log       zerolog.Logger
	met       *metrics
	symbols   *symbol.Symbolizer
	symbolsID string
	// p is the pipeline, for the state its workers share: the in-flight
	// count and the repository → latest image map.
	p *Pipeline

	id         int
	ch         chan item
	ctl        chan func() // runs on the worker goroutine (admin operations)
	images     map[string]*image
	imageCount atomic.Int64
	seqs       map[seqKey]*list.Element // sequence key → element of lru (value *sequence)
	risen      []*sequence              // treeEvidence's scratch: the subtrees whose alarm rose at the event
	within     *sequence                // treeEvidence's scratch: the nearest ancestor already in a subtree episode
	lru        *list.List               // most recently seen at the front
	maxSeqs    int
	containers map[string]*containerState

	// pending commit: journal entries done and alerts to write with them.
	done     []uint64
	puts     []scorer.OutboxPut
	volatile int // events processed that were never journaled (AcceptUnjournaled)

	unflushed   []scorer.BaselineDelta // deltas a failed flush could not write, and those of evicted images
	compactions []compaction           // closed buckets whose flush blobs can be merged
	imageLRU    *list.List             // images, most recently seen at the front (values *image)
	maxImages   int
}

// containerState is the current anomaly state of one container, attached
// to Falco alerts from that container.
type containerState struct {
	image      string
	anomalous  int               // sequences of this container currently in an anomalous episode
	last       scorer.AnomalyRef // the latest anomaly (window alarm or end of process), named by the Falco alerts that follow it
	firstEvent time.Time         // event time of the earliest anomaly this state remembers
	lastEvent  time.Time         // event time of the latest anomaly (replays keep their own clock)
	touched    time.Time         // processing time of the latest anomaly, for cleanup
}

// record remembers a, an anomaly or sequence_end alert of the container, for
// the Falco alerts that follow it: whichever verdict found the anomaly, a
// Falco alert soon after in the same container is raised by it.
func (cs *containerState) record(a *scorer.Alert, now time.Time) {
	cs.touched = now
	if cs.firstEvent.IsZero() || a.Time.Before(cs.firstEvent) {
		cs.firstEvent = a.Time
	}
	cs.lastEvent = a.Time
	cs.last = scorer.AnomalyRef{ID: a.ID, Kind: a.Kind, Time: a.Time, Score: a.Score.Value, Threshold: a.Score.Threshold,
		Ratio: a.Score.Ratio, Process: strings.Clone(a.Subject.Process), PID: a.Subject.PID}
}

func newWorker(p *Pipeline, id int) *worker {
	maxSeqs := max(p.cfg.MaxSequences/p.cfg.Workers, 1)
	return &worker{
		cfg:        p.cfg,
		deps:       p.deps,
		log:        p.log,
		met:        p.met,
		symbols:    p.symbols,
		symbolsID:  p.symbolsID,
		p:          p,
		id:         id,
		ch:         make(chan item, p.cfg.QueueSize),
		ctl:        make(chan func()),
		images:     make(map[string]*image),
		seqs:       make(map[seqKey]*list.Element),
		lru:        list.New(),
		maxSeqs:    maxSeqs,
		containers: make(map[string]*containerState),
		imageLRU:   list.New(),
		maxImages:  max(p.cfg.MaxImages/p.cfg.Workers, 1),
	}
}

func (w *worker) run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.FlushInterval)
	defer tick.Stop()
	// A commit is one store transaction. Committing whenever the queue
	// emptied meant one per few events at moderate rates (3,200 a second at
	// 12k events/s); waiting CommitDelay for more makes them larger and
	// fewer, for that much more alert latency.
	delay := w.cfg.CommitDelay
	commitTimer := time.NewTimer(time.Hour)
	commitTimer.Stop()
	defer commitTimer.Stop()
	var commitDue <-chan time.Time // set while the timer runs
	commitNow := func() {
		commitTimer.Stop()
		commitDue = nil
		w.commit(ctx)
	}
	for {
		select {
		case it := <-w.ch:
			w.process(it)
			// Take what is already queued without a select per event
			// (selectgo was 9 % of the pipeline's CPU under load).
			for n := len(w.ch); n > 0 && w.uncommitted() < w.cfg.CommitBatch; n-- {
				w.process(<-w.ch)
			}
			switch {
			case w.uncommitted() >= w.cfg.CommitBatch || (len(w.ch) == 0 && delay == 0):
				commitNow()
			case len(w.ch) == 0 && commitDue == nil && w.uncommitted() > 0:
				commitTimer.Reset(delay)
				commitDue = commitTimer.C
			}
		case <-commitDue:
			commitNow()
		case <-tick.C:
			w.maintain(w.deps.Now())
		case fn := <-w.ctl:
			fn()
		case <-ctx.Done():
			// Drain: every accepted event is scored and committed before
			// the worker returns (inputs were stopped first).
			for {
				select {
				case it := <-w.ch:
					w.process(it)
					if w.uncommitted() >= w.cfg.CommitBatch {
						w.commit(context.Background())
					}
					continue
				default:
				}
				break
			}
			w.commit(context.Background())
			w.learnLiveSequences()
			w.flushBaselines(w.deps.Now())
			return
		}
	}
}

// shippedRulePrefix starts the names of the observation rules falco-scorer
// ships (rules/falco-scorer_rules.yaml).
const shippedRulePrefix = "falco-scorer "

// isObservation tells an observation (scored and learned, forwarded only
// when anomalous) from a Falco rule alert (always forwarded). Falco sends
// tags only with json_include_tags_property: true; without any, the
// shipped rules are still known by name, so that a Falco configured
// without tags does not forward every observation as an alert.
func (w *worker) isObservation(ev *scorer.Event) bool {
	if ev.HasTag(w.cfg.ObservationTag) {
		return true
	}
	return len(ev.Tags) == 0 && strings.HasPrefix(ev.Rule, shippedRulePrefix)
}

// process scores one event and queues its alerts for the next commit.
func (w *worker) process(it item) {
	now := w.deps.Now()
	ev := &it.ev
	// Counted once processed, so that a reader of the metrics who sees an
	// event scored also sees the alerts it raised.
	if w.isObservation(ev) {
		w.observe(it, now)
		w.met.scored.WithLabelValues("observation").Inc()
	} else {
		w.falcoAlert(it, now)
		w.met.scored.WithLabelValues("falco").Inc()
	}
	if it.journaled {
		w.done = append(w.done, it.seq)
	} else {
		w.volatile++
	}
}

// observe runs one observation event through its sequence: score, verdict,
// learn. It alerts only on an anomaly (rising edge) or an anomalous end.
func (w *worker) observe(it item, now time.Time) {
	evtType := it.ev.Field(scorer.FieldEvtType...)
	if evtType == "" {
		return // nothing to score; counted as scored, no alert
	}
	img := w.image(it.subj.Image, now)
	img.lastSeen = now
	key := w.sequenceKey(&it)
	ppid, _ := it.ev.IntField(scorer.FieldProcPPID...)
	seq := w.sequence(key, ppid, img, it.subj.ContainerID, now)
	seq.lastEvent, seq.proc = it.ev.Time, it.subj.Process

	if evtType == "procexit" && w.cfg.SequenceKey == SequenceByProcess {
		w.endSequence(seq, &it, now, "exit")
		return
	}
	obs := observationOf(&it.ev, evtType)
	sym := w.symbols.Symbol(&obs)
	r := img.step(seq, sym)
	if r.oov {
		w.met.oov.Inc()
	}
	alerted, learning := false, img.learning()
	if learning {
		if img.learnFrom.IsZero() {
			img.learnFrom = it.ev.Time
		}
		img.learnTo = it.ev.Time
	}
	if on := w.deps.OnScored; on != nil {
		defer func() {
			on(Scored{Image: img.key, ContainerID: it.subj.ContainerID, PID: it.subj.PID, PPID: ppid, Time: it.ev.Time,
				Symbol: sym, Learning: learning, Surprise: r.step.Surprise, Window: r.window, Ready: r.full,
				Threshold: img.threshold, Alerted: alerted, ModelBytes: img.model.Stats().Bytes, Transitions: img.model.Stats().Transitions})
		}()
	}
	if img.learning() {
		// Scored before it is learned, so the score is held out: it
		// calibrates the threshold. Learning images never alert; a
		// sequence that alerted before its image went back to learning
		// calibrates nothing.
		if !seq.alerted {
			img.sampleWindow(r)
		}
	} else if r.full {
		alerted = w.judge(&it, img, seq, &r, now)
	}
	// Poisoning guard: an anomalous sequence teaches the baseline nothing.
	if img.deferLearn(seq, r) {
		w.met.heldBack.Inc()
	}
	img.advance(seq, r)
	if img.learning() && img.ready(w.cfg) {
		img.graduate(now, w.cfg)
		w.resetScores(img)
		w.met.images.WithLabelValues(scorer.StateLearning).Dec()
		w.met.images.WithLabelValues(scorer.StateMonitoring).Inc()
		w.met.graduated.Inc()
		w.log.Info().Str("image", scorer.TruncateForLog(img.key)).Uint64("events", img.conv.Events).
			Float64("threshold", img.threshold).Float64("end_threshold", img.endThreshold).
			Msg("baseline graduated to monitoring")
		if on := w.deps.OnGraduated; on != nil {
			on(Graduated{Image: img.key, Events: img.conv.Events, Threshold: img.threshold, EndThreshold: img.endThreshold})
		}
	}
}

// hysteresis: an episode ends when the window score falls below this
// fraction of the threshold, so one episode raises one alert.
const hysteresis = 0.8

// falcoAlert forwards a Falco rule's event, annotated with its container's
// anomaly state; the rules re-prioritize it.
func (w *worker) falcoAlert(it item, now time.Time) {
	a := &scorer.Alert{
		ID:      scorer.AlertID(it.ev.Raw, scorer.KindFalco),
		Kind:    scorer.KindFalco,
		Time:    it.ev.Time,
		Event:   it.ev,
		Subject: it.subj,
		Score:   scorer.Score{Verdict: scorer.VerdictUnscored, FalcoPriority: it.ev.Priority, Band: "none"},
		Reason:  "falco rule " + strconv.Quote(it.ev.Rule),
	}
	if img, ok := w.images[it.subj.Image]; ok {
		a.Baseline = img.maturity()
		a.Baseline.Graduated = img.graduated
		if img.learning() {
			a.Score.Verdict = scorer.VerdictLearning
		} else {
			a.Score.Verdict = scorer.VerdictNormal
		}
	}
	if cs, ok := w.containers[it.subj.ContainerID]; ok && it.subj.ContainerID != "" {
		// From the first anomaly the state remembers (less the skew) to
		// recent_anomaly after the latest: an alert processed after a later
		// episode began may still follow an earlier one.
		if cs.anomalous > 0 || !it.ev.Time.Before(cs.firstEvent.Add(-anomalySkew)) && it.ev.Time.Sub(cs.lastEvent) < w.cfg.RecentAnomaly {
			last := cs.last
			a.Anomaly = &last
			a.Score = scorer.Score{Value: last.Score, Threshold: last.Threshold, Ratio: last.Ratio,
				Verdict: scorer.VerdictAnomalous, FalcoPriority: it.ev.Priority}
			a.Reason += " in a container behaving anomalously (" + last.Kind + " alert " + last.ID + ")"
		}
	}
	w.emit(a, now)
}

// emit applies the rules and queues the alert for each chosen sink.
func (w *worker) emit(a *scorer.Alert, now time.Time) {
	if a.Priority == 0 && a.Kind == scorer.KindFalco {
		a.Priority = a.Event.Priority
	}
	if a.Kind != scorer.KindFalco && a.Subject.ContainerID != "" {
		// Remembered whatever the rules decide: a suppressed or unrouted
		// anomaly still raises the Falco alerts that follow it.
		cs, ok := w.containers[a.Subject.ContainerID]
		if !ok {
			cs = &containerState{image: strings.Clone(a.Subject.Image)}
			w.containers[strings.Clone(a.Subject.ContainerID)] = cs
		}
		cs.record(a, now)
	}
	d := scorer.Decision{Priority: a.Priority, Band: a.Score.Band, Sinks: w.deps.Sinks}
	if w.deps.Decider != nil {
		d = w.deps.Decider.Decide(a, now)
	}
	if d.Suppressed {
		w.met.suppressed.WithLabelValues(a.Kind).Inc()
		return
	}
	a.Priority = d.Priority
	if d.Band != "" {
		a.Score.Band = d.Band
	}
	a.Sinks = d.Sinks
	if len(d.Sinks) == 0 {
		w.met.suppressed.WithLabelValues(a.Kind).Inc()
		return
	}
	payload, err := a.MarshalJSON()
	if err != nil {
		w.log.Error().Err(err).Str("kind", a.Kind).Msg("encode alert")
		return
	}
	h := a.Header().Detached() // the outbox may keep it after the event is gone
	for _, s := range d.Sinks {
		w.puts = append(w.puts, scorer.OutboxPut{Sink: s, AlertID: a.ID, Payload: payload, Header: &h})
	}
	w.met.alerts.WithLabelValues(a.Kind, a.Priority.String()).Inc()
}

// uncommitted counts the events processed since the last commit.
func (w *worker) uncommitted() int { return len(w.done) + w.volatile }

// commit writes pending alerts to the outbox and removes their events from
// the journal in one atomic store operation. It retries until the store
// accepts: an event leaves the journal only with its alerts safe.
func (w *worker) commit(ctx context.Context) {
	if w.uncommitted() == 0 {
		return
	}
	start := time.Now()
	backoff := 10 * time.Millisecond
	logged := false
	for {
		err := w.deps.Journal.Complete(w.done, w.puts)
		if err == nil {
			break
		}
		w.met.commitErrors.Inc()
		if !logged {
			w.log.Error().Err(err).Int("events", len(w.done)).Msg("outbox commit failed, retrying")
			logged = true
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			// Shutting down with the store failing: the events stay in
			// the journal and are replayed at the next start.
			if ctx.Err() != nil && backoff >= time.Second {
				w.p.inflight.Add(-int64(w.uncommitted()))
				w.done, w.puts, w.volatile = w.done[:0], w.puts[:0], 0
				return
			}
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	if logged {
		w.log.Info().Msg("outbox commit recovered")
	}
	w.met.scoreSeconds.Observe(time.Since(start).Seconds())
	hadAlerts := len(w.puts) > 0
	w.p.inflight.Add(-int64(w.uncommitted()))
	w.done, w.puts, w.volatile = w.done[:0], w.puts[:0], 0
	if hadAlerts {
		w.deps.Wake()
	}
}

// forget drops an image from memory (after an admin reset or import): its
// sequences are closed without learning, and the next event of the image
// loads whatever the store now holds.
func (w *worker) forget(key string) {
	img, ok := w.images[key]
	if !ok {
		return
	}
	for el := w.lru.Front(); el != nil; {
		next := el.Next()
		if s := el.Value.(*sequence); s.img == img {
			s.alerted = true // drop its pending events: the baseline they belong to is gone
			w.closeSequence(el, "image_reset")
		}
		el = next
	}
	w.removeImage(img)
}

// dropUnflushed forgets the counts of image that a failed flush or an
// eviction left for the next flush: the image's stored baseline is being
// replaced, and they would be written over it.
func (w *worker) dropUnflushed(image string) {
	w.unflushed = slices.DeleteFunc(w.unflushed, func(d scorer.BaselineDelta) bool { return d.Image == image })
}

// learnLiveSequences learns, at shutdown, the events still queued in live
// sequences that raised no alarm: their state is not kept across a
// restart, and without this a baseline of long-lived processes would never
// be stored.
func (w *worker) learnLiveSequences() {
	for el := w.lru.Front(); el != nil; el = el.Next() {
		s := el.Value.(*sequence)
		if n := s.img.flushPending(s, !s.alerted && !s.alarm.On()); n > 0 {
			w.met.heldBack.Add(float64(n))
		}
	}
}

// sequenceKey names the trace an event belongs to.
func (w *worker) sequenceKey(it *item) seqKey {
	c := it.subj.ContainerID
	if c == "" {
		c = it.subj.Hostname
	}
	if w.cfg.SequenceKey == SequenceByContainer {
		return seqKey{container: c}
	}
	return seqKey{container: c, pid: it.subj.PID}
}

// seqKey names a sequence: a container (or host) and, per process, a pid
// (0 per container). A struct, not a joined string: no allocation per event.
type seqKey struct {
	container string
	pid       int64
}

// sequence finds or creates the sequence for key, evicting the least
// recently seen one when the shard is full. A new process's sequence starts
// from its parent's history (the process tree): a child that spawns, execs
// and exits in three events is scored in the context of what its parent did.
func (w *worker) sequence(key seqKey, ppid int64, img *image, container string, now time.Time) *sequence {
	if el, ok := w.seqs[key]; ok {
		s := el.Value.(*sequence)
		if s.img == img {
			s.lastSeen = now
			w.lru.MoveToFront(el)
			return s
		}
		// The container's image changed (cache refreshed): start afresh.
		w.closeSequence(el, "image_changed")
	}
	for len(w.seqs) >= w.maxSeqs {
		w.closeSequence(w.lru.Back(), "capacity")
	}
	// Keys outlive the event: copy them, or each would pin the event's
	// whole raw JSON (DecodeJSON's strings point into it).
	container = strings.Clone(container)
	if key.container == container {
		key.container = container
	} else {
		key.container = strings.Clone(key.container)
	}
	s := img.newSequence(key, container, now)
	if key.pid != 0 && ppid > 0 {
		if el, ok := w.seqs[seqKey{container: key.container, pid: ppid}]; ok {
			if parent := el.Value.(*sequence); parent.img == img {
				s.hist = parent.hist
				s.parent, s.hasParent = parent.key, true
			}
		}
	}
	w.seqs[key] = w.lru.PushFront(s)
	w.met.sequences.Add(1)
	return s
}

func (w *worker) closeSequence(el *list.Element, reason string) {
	s := el.Value.(*sequence)
	if s.alarm.On() {
		w.containerLeave(s)
	}
	if n := s.img.flushPending(s, !s.alerted); n > 0 {
		w.met.heldBack.Add(float64(n))
	}
	w.lru.Remove(el)
	delete(w.seqs, s.key)
	w.met.sequences.Add(-1)
	w.met.evicted.WithLabelValues(reason).Inc()
}

// endSequence closes a sequence on process exit, with an end-of-sequence
// verdict over the whole trace.
func (w *worker) endSequence(seq *sequence, it *item, now time.Time, reason string) {
	img := seq.img
	if on := w.deps.OnScored; on != nil {
		sc := Scored{Image: img.key, ContainerID: it.subj.ContainerID, PID: it.subj.PID, Time: it.ev.Time,
			Learning: img.learning(), End: true, EndScore: img.endScore(seq), EndThreshold: img.endThreshold,
			EndJudged: !img.learning() && img.endCalibrated() && seq.events >= minEndEvents, Threshold: img.threshold}
		sc.Alerted = sc.EndJudged && sc.EndScore > img.endThreshold && !seq.alerted
		defer on(sc)
	}
	switch {
	case img.learning():
		if !seq.alerted {
			img.sampleEnd(seq)
		}
	case !img.endCalibrated():
		if !seq.alerted {
			img.sampleEnd(seq)
			img.calibrateEnd(w.cfg)
		}
	case seq.events >= minEndEvents:
		score := img.endScore(seq)
		if score > img.endThreshold && !seq.alerted {
			r := stepResult{window: score}
			a := w.anomalyAlert(it, img, seq, r, scorer.KindEnd)
			a.Score.Value, a.Score.Threshold = score, img.endThreshold
			a.Score.Ratio = ratio(score, img.endThreshold)
			w.emit(a, now)
		}
	}
	if el, ok := w.seqs[seq.key]; ok {
		w.closeSequence(el, reason)
	}
}

// judge takes the online verdict on the event just scored in a monitored
// image, raising at most one alert, and reports whether it did. r.window
// becomes the event's score: its process's, or its subtree's when that
// raised an alarm (an ancestor already in an episode does not make every
// later event of its subtree score high).
func (w *worker) judge(it *item, img *image, seq *sequence, r *stepResult, now time.Time) (alerted bool) {
	wasOn := seq.alarm.On()
	own := r.window
	tree, root := w.treeEvidence(seq, img, *r, now)
	if root != nil {
		r.window = max(own, tree)
	}
	// An alarm rises only on an event that raised the score: a child
	// starts from its parent's history, and must not alert for it alone.
	// A subtree's alarm that rose at this event alerts once, about the
	// process whose event it was (unless that one's own episode is on).
	ownRose := (r.rose || wasOn) && seq.alarm.Update(own, img.threshold, img.threshold*hysteresis)
	if seq.cusum.S == 0 {
		seq.joined = false
	}
	switch {
	case ownRose && seq.joined:
		// Its subtree's episode already alerted about this process; its
		// own score crossing the threshold is the same episode.
		seq.peak = own
		w.containerEnter(seq, img, now)
	case ownRose || root != nil && !wasOn:
		if ownRose {
			seq.peak = own
			w.containerEnter(seq, img, now)
		}
		if seq.repeats(r.sym, it.ev.Time, w.cfg.RepeatInterval) {
			// Folded: no alert. The subtree episodes that rose at this
			// step end and drop their scores: left on, an episode that
			// never alerted would silence its subtree; left high, the
			// next ordinary step below it would tip it.
			for _, s := range w.risen {
				s.treeAlarm, s.tree.S = markov.Alarm{}, 0
			}
			w.met.folded.Inc()
			return false
		}
		seq.markAlerted(r.sym, it.ev.Time)
		if !ownRose {
			seq.joined = true
		}
		a := w.anomalyAlert(it, img, seq, *r, scorer.KindAnomaly)
		if !ownRose && root != seq {
			a.Reason = TreeReasonPrefix + strconv.FormatInt(root.key.pid, 10) + " unusual for this image"
			a.Subject.TreeRootPID, a.Subject.TreeRoot = root.key.pid, root.proc
			a.Explain = img.explainTree(seq, root, explainTop)
		} else if in := w.within; in != nil {
			// Its own alarm, inside an ancestor's anomalous subtree
			// episode (a tool an attacker's shell ran): named after that
			// tree too, so that readers and responders can group them.
			a.Subject.TreeRootPID, a.Subject.TreeRoot = in.key.pid, in.proc
		}
		w.emit(a, now)
		return true
	case seq.alarm.On():
		seq.peak = max(seq.peak, own)
	case wasOn:
		w.containerLeave(seq)
	}
	return false
}

// TreeReasonPrefix begins the reason of an alert that a process's subtree
// raised (the pid of the subtree's root follows).
const TreeReasonPrefix = "system-call sequence of the process tree under pid "

// treeEvidence pushes the event just scored into the subtree scores of
// its process and of the process's live ancestors (tree_evidence,
// per-process sequences), so that a shell whose children each do one odd
// thing and exit accumulates them all. It returns the highest subtree
// score whose alarm rose at this event, and the nearest ancestor whose did
// (the process itself when only its own subtree did),
// or nil when none did or a subtree on the walk was already in an episode
// (one alert each). The walk stops at the first ancestor no longer live or
// of another image, and after maxTreeDepth.
func (w *worker) treeEvidence(seq *sequence, img *image, r stepResult, now time.Time) (top float64, root *sequence) {
	if !w.cfg.TreeEvidence || w.cfg.SequenceKey != SequenceByProcess || img.cusumK <= 0 {
		return 0, nil
	}
	ongoing := false // a subtree on the walk was already in an episode: this one is part of it
	w.risen, w.within = w.risen[:0], nil
	for cur, depth := seq, 0; ; depth++ {
		ongoing = ongoing || cur.treeAlarm.On()
		if w.within == nil && cur != seq && cur.treeAlarm.On() {
			w.within = cur
		}
		before := cur.tree.S
		v := cur.tree.Push(r.step.Surprise)
		if cur != seq && v > before {
			// A descendant's step raised it: kept to explain an alert
			// its subtree may raise (the process's own steps are in its
			// window).
			if cur.treeLog == nil {
				cur.treeLog = &treeLog{}
			}
			cur.treeLog.add(treeStep{hist: seq.hist, sym: r.sym, surprise: r.step.Surprise, seen: r.step.Seen})
		}
		if cur.treeAlarm.Update(v, img.threshold, img.threshold*hysteresis) {
			w.risen = append(w.risen, cur)
			top = max(top, v)
			if root == nil || root == seq {
				// The smallest subtree that crossed names the alert: the
				// nearest risen ancestor, not a long-lived server further
				// up whose subtree holds everything (the process a
				// responder would act on).
				root = cur
			}
			if cur != seq {
				// Its subtree is anomalous: it teaches the baseline nothing
				// either (what it queued is held, its end learns nothing).
				cur.alerted, cur.held = true, len(cur.pend)-cur.phead
				w.containerEnter(cur, img, now) // a moment of anomaly, held by no alarm of its own
				w.containerLeave(cur)
			}
		}
		if !cur.hasParent || depth+1 >= maxTreeDepth {
			break
		}
		el, ok := w.seqs[cur.parent]
		if !ok {
			break
		}
		if cur = el.Value.(*sequence); cur.img != img {
			break
		}
	}
	if ongoing {
		return top, nil
	}
	return top, root
}

// maxTreeDepth bounds the ancestors an event is pushed to (the walk is per
// event): deep enough for a shell, its interpreter and their children.
const maxTreeDepth = 8

// recentAnomaly is the default of Config.RecentAnomaly: how long a
// container stays "anomalous" for the Falco alerts that follow an anomalous
// sequence in it.
const recentAnomaly = 10 * time.Minute

// anomalySkew is how much earlier than its container's latest anomaly a
// Falco alert may be timed and still count as following it: clocks of
// Falco instances feeding one scorer differ a little, but an alert from
// well before the anomaly (a replayed file or journal) did not follow it.
const anomalySkew = 5 * time.Second

// minEndEvents: shorter traces carry too little evidence for a whole-trace verdict.
const minEndEvents = 8

// anomalyAlert builds the alert for an anomalous window or sequence.
func (w *worker) anomalyAlert(it *item, img *image, seq *sequence, r stepResult, kind string) *scorer.Alert {
	seq.alerted = true
	a := &scorer.Alert{
		ID:       scorer.AlertID(it.ev.Raw, kind),
		Kind:     kind,
		Time:     it.ev.Time,
		Priority: scorer.PriorityWarning,
		Event:    it.ev,
		Subject:  it.subj,
		Score: scorer.Score{
			Value: r.window, Threshold: img.threshold, Ratio: ratio(r.window, img.threshold),
			Verdict: scorer.VerdictAnomalous, FalcoPriority: it.ev.Priority,
		},
		Baseline: img.maturity(),
		Explain:  img.explain(seq, explainTop),
	}
	a.Baseline.Graduated = img.graduated // the rules rank an anomaly by its baseline's maturity
	if kind == scorer.KindEnd {
		a.Reason = "process " + strconv.Quote(it.subj.Process) + " ended with a system-call sequence unusual for this image"
	} else {
		a.Reason = "system-call sequence unusual for this image"
	}
	return a
}

const explainTop = 5

func ratio(v, t float64) float64 {
	if t <= 0 {
		return 0
	}
	return v / t
}

func (w *worker) containerEnter(seq *sequence, img *image, now time.Time) {
	if seq.container == "" {
		return
	}
	cs, ok := w.containers[seq.container]
	if !ok {
		cs = &containerState{image: img.key}
		w.containers[seq.container] = cs
	}
	cs.anomalous++
	cs.touched = now
	if cs.firstEvent.IsZero() || seq.lastEvent.Before(cs.firstEvent) {
		cs.firstEvent = seq.lastEvent
	}
	cs.lastEvent = seq.lastEvent
}

// resetScores zeroes the online scores of img's live sequences when it
// graduates: what a sequence accumulated against a young model (every step
// new) says nothing about it against the baseline it is now judged by.
func (w *worker) resetScores(img *image) {
	for el := w.lru.Front(); el != nil; el = el.Next() {
		if s := el.Value.(*sequence); s.img == img {
			s.cusum.S, s.tree.S = 0, 0
			s.calmTree()
		}
	}
}

// calmSequences ends the anomalous episodes of img's live sequences when
// the image goes back to learning, where no alarm is updated: an alarm left
// on would stay on, and its container count as anomalous, for the
// sequence's whole life (and a subtree episode left on would silence its
// subtree after the next graduation). What the alarm held back stays
// held, and the sequences stay alerted (they learn and calibrate nothing).
func (w *worker) calmSequences(img *image) {
	for el := w.lru.Front(); el != nil; el = el.Next() {
		s := el.Value.(*sequence)
		if s.img != img {
			continue
		}
		if s.alarm.On() {
			w.containerLeave(s)
			s.alarm = markov.Alarm{}
		}
		s.calmTree()
	}
}

func (w *worker) containerLeave(seq *sequence) {
	if cs, ok := w.containers[seq.container]; ok && cs.anomalous > 0 {
		cs.anomalous--
	}
}

// maintain runs on the flush tick: close idle sequences, persist learned
// counts, roll the horizon, update gauges.
func (w *worker) maintain(now time.Time) {
	idle := now.Add(-w.cfg.SequenceIdle)
	for el := w.lru.Back(); el != nil; {
		s := el.Value.(*sequence)
		if s.lastSeen.After(idle) {
			break
		}
		prev := el.Prev()
		w.closeSequence(el, "idle")
		el = prev
	}
	for id, cs := range w.containers {
		if cs.anomalous == 0 && now.Sub(cs.touched) >= w.cfg.RecentAnomaly {
			delete(w.containers, id)
		}
	}
	w.flushBaselines(now)
	w.rollHorizon(now)
	w.compact()
}

// compaction is one closed (image, bucket) whose blobs can be merged.
type compaction struct {
	image  string
	bucket time.Time
}

// maxCompactionsPerTick spreads the work of an hour boundary (every image
// closes its bucket at once) over several ticks.
const maxCompactionsPerTick = 64

// compact merges the flush blobs of closed buckets into one blob each, so
// that the store holds one blob per image and hour instead of one per flush.
func (w *worker) compact() {
	c, ok := w.deps.Baselines.(scorer.BucketCompactor)
	if !ok {
		w.compactions = nil
		return
	}
	n := min(len(w.compactions), maxCompactionsPerTick)
	for _, job := range w.compactions[:n] {
		if err := w.compactBucket(c, job); err != nil {
			w.log.Warn().Err(err).Str("image", scorer.TruncateForLog(job.image)).Time("bucket", job.bucket).Msg("compact baseline bucket")
		}
	}
	w.compactions = append(w.compactions[:0], w.compactions[n:]...)
}

func (w *worker) compactBucket(c scorer.BucketCompactor, job compaction) error {
	buckets, err := w.deps.Baselines.ImageBuckets(job.image, job.bucket, job.bucket.Add(w.cfg.BucketSize))
	if err != nil || len(buckets) < 2 {
		return err
	}
	blobs := make([][]byte, len(buckets))
	for i, b := range buckets {
		blobs[i] = b.Counts
	}
	merged, err := markov.MergeDeltas(blobs...)
	if err != nil {
		return err
	}
	return c.CompactBucket(job.image, job.bucket, len(buckets), merged)
}

// flushBaselines writes every image's counts learned since the last flush,
// with its state, in one store operation. A failed flush keeps nothing back
// for later: the counts stay in the model, only the stored copy lags, and
// the pending delta of the failed flush is re-applied to the next one.
func (w *worker) flushBaselines(now time.Time) {
	var deltas []scorer.BaselineDelta
	bucket := now.Truncate(w.cfg.BucketSize)
	for _, img := range w.images {
		if !img.dirty || w.deps.Baselines == nil {
			continue
		}
		d, err := img.takeDelta(bucket)
		if err != nil {
			w.log.Error().Err(err).Str("image", scorer.TruncateForLog(img.key)).Msg("encode baseline delta")
			continue
		}
		deltas = append(deltas, d)
		if !img.flushed.IsZero() && img.flushed.Before(bucket) {
			w.compactions = append(w.compactions, compaction{img.key, img.flushed})
		}
		img.flushed = bucket
	}
	// Deltas left by a failed flush or an evicted image go first, so the
	// newest meta of an image is the one kept.
	all := append(w.unflushed, deltas...)
	w.unflushed = nil
	if len(all) == 0 {
		return
	}
	if err := w.deps.Baselines.PutDeltas(all); err != nil {
		w.met.flushErrors.Inc()
		w.log.Error().Err(err).Int("images", len(all)).Msg("baseline flush failed, keeping deltas for the next one")
		var partial scorer.PartialFlush
		if errors.As(err, &partial) {
			all = withoutImages(all, partial.StoredImages())
		}
		if len(all) > maxUnflushed {
			all = all[len(all)-maxUnflushed:]
		}
		w.unflushed = all
	}
}

// withoutImages drops the deltas of the given images.
func withoutImages(deltas []scorer.BaselineDelta, images []string) []scorer.BaselineDelta {
	drop := make(map[string]bool, len(images))
	for _, im := range images {
		drop[im] = true
	}
	kept := deltas[:0]
	for _, d := range deltas {
		if !drop[d.Image] {
			kept = append(kept, d)
		}
	}
	return kept
}

// maxUnflushed bounds the deltas kept in memory while the store refuses
// flushes; beyond it the oldest are given up (the live model keeps them).
const maxUnflushed = 4096

// rollHorizon subtracts the counts of buckets that left the rolling horizon,
// so behaviour seen only long ago stops counting as normal.
func (w *worker) rollHorizon(now time.Time) {
	if w.deps.Baselines == nil {
		return
	}
	start := w.cfg.horizonStart(now)
	for _, img := range w.images {
		if !img.oldestBucket.Before(start) {
			continue
		}
		if !img.retryLoad.IsZero() {
			// A stand-in never held the stored buckets leaving the horizon.
			img.oldestBucket = start
			continue
		}
		old, err := w.deps.Baselines.ImageBuckets(img.key, img.oldestBucket, start)
		if err != nil {
			w.log.Error().Err(err).Str("image", scorer.TruncateForLog(img.key)).Msg("read expired buckets")
			continue
		}
		for _, b := range old {
			if err := applyCounts(img.model, b.Counts, -1); err != nil {
				w.log.Warn().Err(err).Str("image", scorer.TruncateForLog(img.key)).Msg("subtract expired bucket")
			}
		}
		img.oldestBucket = start
		if w.expireThin(img, "horizon") {
			w.met.images.WithLabelValues(scorer.StateMonitoring).Dec()
			w.met.images.WithLabelValues(scorer.StateLearning).Inc()
			w.calmSequences(img)
		}
	}
}
