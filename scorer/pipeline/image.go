package pipeline

import (
	"cmp"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// image is one image's baseline as a worker holds it: the model, its
// maturity and its calibrated thresholds.
type image struct {
	key          string
	model        *markov.Model
	conv         markov.Convergence
	state        string
	threshold    float64 // online window score above which a sequence alerts
	endThreshold float64 // end-of-sequence score above which a finished sequence alerts
	since        time.Time
	graduated    time.Time
	lastSeen     time.Time
	inherited    string
	symbols      string    // the symbol language of the counts (symbol.Config.Fingerprint)
	symbolsSince time.Time // counts in buckets before this one's are of another language
	oldestBucket time.Time // counts from buckets before this were subtracted (rolling horizon)
	win          calib     // ready-window scores of the recent learning stream (calibration)
	end          calib     // end-of-sequence scores of the recent learning stream
	blockRates   []float64 // new-transition rates of the latest 2·learning_blocks blocks (plateau test)
	dirty        bool      // learned since the last flush
	windowLen    int
	windowWarm   int
	cusumK       float64             // the CUSUM allowance when the online score is a CUSUM; 0: the window mean
	cusumCap     float64             // the most one event adds to the CUSUM
	pairs        map[uint32]struct{} // (previous, symbol) pairs learned, while learning (newPair)
	elem         *list.Element       // in the worker's image LRU
	removed      bool                // evicted or reset: learns nothing more (its counts would be lost)
	flushed      time.Time           // bucket of the latest flush; an older one is closed and can be compacted
	needWin      uint64              // window scores a threshold for the alert budget needs
	needEnd      uint64              // finished processes an end-of-sequence threshold needs
	// retryLoad is set on a stand-in for a stored baseline that could not be
	// read: it learns meanwhile, but its flushes add counts without
	// replacing the stored state, and its next event from retryLoad on
	// tries the load again.
	retryLoad time.Time
}

// loadRetryInterval is how long a stand-in waits before the stored
// baseline is read again.
const loadRetryInterval = 30 * time.Second

// imageMeta is the image's state as the store keeps it (Meta bytes).
//
// A threshold not calibrated yet (+Inf in memory) is stored as null. Stores
// written before that hold 0 for it, so a stored 0 also reads as not
// calibrated: a window threshold is a quantile of window scores, means of
// surprises ≥ 0, so 0 would alert on every window; an end threshold of
// exactly 0 is a coincidence of the histogram, and reading it as not
// calibrated only recalibrates it from the stored sample at the next exit.
// Negative end thresholds are real (end scores are surprise minus entropy)
// and are kept. Older binaries read null as 0, as they always did.
type imageMeta struct {
	Version      int                `json:"v"`
	State        string             `json:"state"`
	Threshold    *float64           `json:"threshold"`
	EndThreshold *float64           `json:"end_threshold"`
	Since        time.Time          `json:"since"`
	Graduated    time.Time          `json:"graduated,omitzero"`
	LastSeen     time.Time          `json:"last_seen"`
	Inherited    string             `json:"inherited_from,omitempty"`
	Convergence  markov.Convergence `json:"convergence"`
	Win          calib              `json:"win_calibration"`
	End          calib              `json:"end_calibration"`
	BlockRates   []float64          `json:"block_rates,omitempty"`
	// Symbols names the symbol language the counts are in; buckets before
	// SymbolsSince's are of an earlier language and are not loaded.
	// Version 1 metas had no Symbols: their counts are of evt.type alone.
	Symbols      string    `json:"symbols"`
	SymbolsSince time.Time `json:"symbols_since,omitzero"`
}

// imageMetaVersion 2 added Symbols; version 1 is still read.
const imageMetaVersion = 2

// DescribeMeta decodes an image's stored meta for admin output (state,
// thresholds, maturity). It returns nil for meta it cannot read.
func DescribeMeta(meta []byte) map[string]any {
	var m imageMeta
	if json.Unmarshal(meta, &m) != nil {
		return nil
	}
	thr := func(p *float64) any { // nil (JSON null): not calibrated
		if t := storedThreshold(p); !math.IsInf(t, 1) {
			return t
		}
		return nil
	}
	// Absent, not zero: a time or a name the baseline does not have.
	opt := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	c := m.Convergence
	out := map[string]any{
		"state": m.State, "threshold": thr(m.Threshold), "end_threshold": thr(m.EndThreshold),
		"since": opt(m.Since), "graduated": opt(m.Graduated), "last_seen": opt(m.LastSeen),
		"learned_events": c.Events, "new_transition_rate": c.LastRate,
		"calibration_samples": m.Win.n(),
	}
	if m.Inherited != "" {
		out["inherited_from"] = m.Inherited
	}
	if m.State != scorer.StateMonitoring {
		// Progress towards graduation: learning_blocks consecutive blocks
		// of learning_block_events events whose rate of new (previous,
		// symbol) pairs is at most new_transition_rate (or a flat learning
		// curve), and enough held-out scores to calibrate the threshold.
		out["graduation"] = map[string]any{
			"converged_blocks": c.Streak, "blocks_needed": c.Blocks, "block_events": c.Block,
			"events_in_block": c.InBlock, "rate_bound": c.Bound,
		}
	}
	return out
}

func (w *worker) modelConfig() markov.Config {
	mc := markov.DefaultConfig()
	mc.Order = w.p.cfg.Order
	mc.VocabSize = w.p.cfg.MaxVocabulary
	return mc
}

func (w *worker) newImage(key string, now time.Time) *image {
	key = strings.Clone(key) // long-lived: must not pin the event's raw JSON
	m, err := markov.New(w.modelConfig())
	if err != nil {
		panic(fmt.Sprintf("markov config validated at start: %v", err)) // unreachable: Config.Validate checked it
	}
	return &image{
		key: key, model: m, conv: newConvergence(w.p.cfg), state: scorer.StateLearning, since: now, lastSeen: now,
		symbols:      w.p.symbolsID,
		oldestBucket: w.p.horizonStart(now), windowLen: w.p.cfg.Window, windowWarm: w.p.cfg.WindowWarmup,
		cusumK: w.p.cfg.cusumAllowance(), cusumCap: w.p.cfg.CusumCap,
		threshold: math.Inf(1), endThreshold: math.Inf(1),
		needWin: w.p.cfg.calibrationSamples(), needEnd: uint64(math.Ceil(1 / w.p.cfg.EndAlertRate)),
	}
}

func newConvergence(cfg Config) markov.Convergence {
	conv := markov.NewConvergence()
	conv.Block = cfg.LearningBlockEvents
	conv.Blocks = cfg.LearningBlocks
	conv.Bound = cfg.NewTransitionRate
	return conv
}

// image returns the worker's image for key, creating it (from a stored
// predecessor of the same repository when there is one) on first sight.
func (w *worker) image(key string, now time.Time) *image {
	if img, ok := w.images[key]; ok {
		if img.retryLoad.IsZero() || now.Before(img.retryLoad) {
			w.imageLRU.MoveToFront(img.elem)
			return img
		}
		// A stand-in: its counts go with the next flush, and the load below
		// merges them into the stored baseline it reads.
		w.stashUnflushed(img)
		w.removeImage(img)
	}
	img, err := w.loadImage(key, now)
	switch {
	case err != nil:
		img = w.newImage(key, now)
		img.retryLoad = now.Add(loadRetryInterval)
	case img == nil:
		img = w.newImage(key, now)
		w.inherit(img, now)
	}
	w.addImage(img)
	return img
}

// addImage makes img live in this worker, evicting the least recently seen
// images beyond the worker's share of max_images.
func (w *worker) addImage(img *image) {
	if old, ok := w.images[img.key]; ok {
		w.removeImage(old)
	}
	w.images[img.key] = img
	img.elem = w.imageLRU.PushFront(img)
	w.p.met.images.WithLabelValues(img.state).Inc()
	for len(w.images) > w.maxImages {
		w.evictImage(w.imageLRU.Back().Value.(*image))
	}
	w.imageCount.Store(int64(len(w.images)))
}

// removeImage drops img from memory (its stored baseline stays).
func (w *worker) removeImage(img *image) {
	img.removed = true
	w.imageLRU.Remove(img.elem)
	delete(w.images, img.key)
	w.p.met.images.WithLabelValues(img.state).Dec()
	w.imageCount.Store(int64(len(w.images)))
}

// evictImage moves the least recently seen image out of memory: its
// unflushed counts go to the next flush, and its next event reloads it from
// the store. Its live sequences keep scoring against the evicted copy until
// they end (a sequence notices a new copy and restarts).
func (w *worker) evictImage(img *image) {
	w.stashUnflushed(img)
	w.removeImage(img)
	w.p.met.imagesEvicted.Inc()
}

// stashUnflushed moves img's counts not yet flushed to the next flush.
func (w *worker) stashUnflushed(img *image) {
	if img.dirty && w.p.deps.Baselines != nil {
		if d, err := img.takeDelta(w.p.deps.Now().Truncate(w.p.cfg.BucketSize)); err == nil {
			w.unflushed = append(w.unflushed, d)
		}
	}
}

// takeDelta takes the counts img learned since its last flush as a delta
// for bucket, with the meta a flush may write (storedMeta).
func (img *image) takeDelta(bucket time.Time) (scorer.BaselineDelta, error) {
	blob, err := img.model.TakeDelta().MarshalBinary()
	if err != nil {
		return scorer.BaselineDelta{}, err
	}
	img.dirty = false
	return scorer.BaselineDelta{Image: img.key, Bucket: bucket, Counts: blob, Meta: img.storedMeta()}, nil
}

// loadImage reads one stored image when the store can do that; nil when it
// cannot or has none. An error means the store has it but could not read it.
func (w *worker) loadImage(key string, now time.Time) (*image, error) {
	loader, ok := w.p.deps.Baselines.(scorer.ImageLoader)
	if !ok {
		return nil, nil
	}
	since := w.p.horizonStart(now)
	meta, buckets, found, err := loader.LoadImage(key, since)
	if err != nil {
		w.p.log.Error().Err(err).Str("image", scorer.TruncateForLog(key)).Dur("retry_in", loadRetryInterval).
			Msg("load baseline; learning in a stand-in that leaves the stored baseline's state alone until it loads")
		return nil, err
	}
	// Counts of an evicted copy (or of a failed flush) that the next flush
	// will write: the reloaded model must hold them as the store soon will,
	// or the horizon would later subtract counts the model never had. They
	// are newer than the store's, and so is their meta.
	for _, d := range w.unflushed {
		if d.Image != key {
			continue
		}
		found = true
		if !d.Bucket.Before(since) {
			buckets = append(buckets, scorer.BaselineBucket{Bucket: d.Bucket, Counts: d.Counts})
		}
		if d.Meta != nil {
			meta = d.Meta
		}
	}
	if !found {
		return nil, nil
	}
	img, err := w.restoreImage(key, meta, buckets, since)
	if err != nil {
		w.p.log.Error().Err(err).Str("image", scorer.TruncateForLog(key)).Msg("discarding unreadable baseline")
		return nil, nil
	}
	return img, nil
}

// restoreImage rebuilds an image from its stored meta and count buckets.
func (w *worker) restoreImage(key string, meta []byte, buckets []scorer.BaselineBucket, since time.Time) (*image, error) {
	img := w.newImage(key, w.p.deps.Now())
	if len(meta) > 0 {
		var m imageMeta
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		if m.Version != imageMetaVersion && m.Version != 1 {
			return nil, fmt.Errorf("meta version %d, want %d", m.Version, imageMetaVersion)
		}
		if m.Version == 1 {
			m.Symbols = symbol.ModeType
		}
		if m.Symbols != img.symbols {
			// Counts of another symbol language (an upgrade, or a changed
			// symbols config) would make every event look new: learn
			// afresh, and never load the old buckets again.
			w.p.log.Info().Str("image", scorer.TruncateForLog(key)).Str("stored", m.Symbols).Str("current", img.symbols).
				Msg("baseline learned with other symbols, learning afresh")
			img.symbolsSince, img.dirty = img.since, true
			w.p.met.expired.WithLabelValues("symbols_changed").Inc()
			return img, nil
		}
		img.symbolsSince = m.SymbolsSince
		img.state = m.State
		img.threshold, img.endThreshold = storedThreshold(m.Threshold), storedThreshold(m.EndThreshold)
		img.since, img.graduated, img.lastSeen, img.inherited = m.Since, m.Graduated, m.LastSeen, m.Inherited
		img.conv, img.win, img.end, img.blockRates = m.Convergence, m.Win, m.End, m.BlockRates
		if img.state != scorer.StateMonitoring {
			img.state = scorer.StateLearning
			img.threshold, img.endThreshold = math.Inf(1), math.Inf(1)
		} else {
			img.threshold = onlineThreshold(w.p.cfg, img.threshold)
		}
	}
	for _, b := range buckets {
		if b.Bucket.Before(w.p.bucketStart(img.symbolsSince)) {
			continue
		}
		if err := applyCounts(img.model, b.Counts, +1); err != nil {
			if errors.Is(err, markov.ErrOrderMismatch) {
				// Counted at another order (the order changed): of no use
				// to this model, and gone once the horizon passes it.
				w.p.log.Info().Str("image", scorer.TruncateForLog(key)).Str("bucket", b.Bucket.Format(time.RFC3339)).
					Msg("skipping baseline bucket of another model order")
				continue
			}
			return nil, fmt.Errorf("bucket %s: %w", b.Bucket.Format(time.RFC3339), err)
		}
	}
	img.oldestBucket = since
	w.expireThin(img, "load")
	return img, nil
}

// storedThreshold reads a stored threshold: null, or the 0 that older
// stores wrote for +Inf, is not calibrated (see imageMeta).
func storedThreshold(p *float64) float64 {
	if p == nil || *p == 0 {
		return math.Inf(1)
	}
	return *p
}

// expireThin puts a monitoring image back to learning when the rolling
// horizon left its model fewer events than an image learns before it may
// graduate (Config.graduationFloor): such a model scores everything as
// rare (or, with a high threshold, nothing), so neither its state nor its
// thresholds mean anything any more. It reports whether it did. The caller
// keeps the state gauge right.
func (w *worker) expireThin(img *image, reason string) bool {
	floor := w.p.cfg.graduationFloor()
	events := img.model.Events()
	if img.learning() || events >= floor {
		return false
	}
	img.relearn(w.p.deps.Now(), w.p.cfg)
	w.p.met.expired.WithLabelValues(reason).Inc()
	w.p.log.Info().Str("image", scorer.TruncateForLog(img.key)).Str("reason", reason).Uint64("events", events).
		Uint64("floor", floor).Msg("baseline expired, back to learning")
	return true
}

// relearn starts the image's learning over on the counts it holds: new
// convergence, new calibration samples, no thresholds. It is marked dirty
// so that the store learns the new state at the next flush.
func (img *image) relearn(now time.Time, cfg Config) {
	img.state = scorer.StateLearning
	img.conv = newConvergence(cfg)
	img.win, img.end, img.blockRates = calib{}, calib{}, nil
	img.threshold, img.endThreshold = math.Inf(1), math.Inf(1)
	img.since, img.graduated = now, time.Time{}
	img.dirty = true
}

func applyCounts(m *markov.Model, blob []byte, sign int) error {
	var d markov.Delta
	if err := d.UnmarshalBinary(blob); err != nil {
		return err
	}
	return m.Apply(d, sign)
}

// inherit starts a new image version from its predecessor's stored counts
// (same repository, another tag or digest), marked as inherited. It still
// learns until its own stream has converged, which is quick when the new
// version behaves like the old one.
func (w *worker) inherit(img *image, now time.Time) {
	repo := scorer.ImageRepository(img.key)
	if repo == "" || w.p.deps.Baselines == nil {
		return
	}
	prev, ok := w.p.repos.Swap(repo, img.key)
	if !ok || prev.(string) == img.key {
		return
	}
	pred := prev.(string)
	buckets, err := w.p.deps.Baselines.ImageBuckets(pred, w.p.horizonStart(now), now.Add(w.p.cfg.BucketSize))
	if err != nil || len(buckets) == 0 {
		return
	}
	var copies []scorer.BaselineDelta
	for _, b := range buckets {
		if err := applyCounts(img.model, b.Counts, +1); err != nil {
			w.p.log.Warn().Err(err).Str("image", scorer.TruncateForLog(img.key)).Str("from", scorer.TruncateForLog(pred)).Msg("inherit baseline")
			return
		}
		copies = append(copies, scorer.BaselineDelta{Image: img.key, Bucket: b.Bucket, Counts: b.Counts})
	}
	img.inherited = pred
	copies[len(copies)-1].Meta = img.meta()
	if err := w.p.deps.Baselines.PutDeltas(copies); err != nil {
		w.p.log.Warn().Err(err).Str("image", scorer.TruncateForLog(img.key)).Msg("store inherited baseline")
	}
}

func (img *image) learning() bool { return img.state != scorer.StateMonitoring }

// storedMeta is the meta a flush writes: none for a stand-in (retryLoad),
// whose state must not replace the stored baseline's.
func (img *image) storedMeta() []byte {
	if !img.retryLoad.IsZero() {
		return nil
	}
	return img.meta()
}

// meta encodes the image's state for the store.
func (img *image) meta() []byte {
	b, _ := json.Marshal(imageMeta{
		Version: imageMetaVersion, State: img.state,
		Threshold: calibrated(img.threshold), EndThreshold: calibrated(img.endThreshold),
		Since: img.since, Graduated: img.graduated, LastSeen: img.lastSeen, Inherited: img.inherited,
		Convergence: img.conv, Win: img.win, End: img.end, BlockRates: img.blockRates,
		Symbols: img.symbols, SymbolsSince: img.symbolsSince,
	})
	return b
}

// calibrated is the stored form of a threshold: nil (null) for +Inf, not
// calibrated.
func calibrated(f float64) *float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	return &f
}

func (img *image) maturity() scorer.Maturity {
	st := img.model.Stats()
	return scorer.Maturity{
		State: img.state, Events: st.Events, Transitions: uint64(st.Transitions),
		Since: img.since, Inherited: img.inherited,
	}
}

// sequence is one live syscall trace (a process, or a container).
type sequence struct {
	key       seqKey
	container string
	img       *image
	hist      markov.History
	win       *markov.Window
	cusum     markov.Cusum // the online score when the image's is a CUSUM
	acc       markov.Sequence
	alarm     markov.Alarm
	alerted   bool
	events    int
	lastSeen  time.Time // processing time, for idle eviction
	lastEvent time.Time // event time of the latest event
	peak      float64   // highest window score of the current episode

	// Learning lags the sequence (poisoning guard): an event is learned
	// only once learnDelay newer events followed it, or when the sequence
	// ends without an anomalous verdict. So neither the events that raise
	// an alarm nor a short process judged anomalous at its end ever teach
	// the baseline. The queue is stored as the history before its first
	// symbol plus the symbols (2 bytes an event), growing only as long as
	// the sequence is.
	pendHist markov.History
	pend     []markov.Symbol
	phead    int
	// held counts the queued events, from phead on, that are never
	// learned: every event queued while the alarm was on, and every
	// older one still queued then (among them the events that raised
	// it). They are dropped as they leave the queue, even once the alarm
	// has fallen; the sequence has alerted, so its end learns nothing either.
	held int
}

func (img *image) newSequence(key seqKey, container string, now time.Time) *sequence {
	win, err := markov.NewWarmWindow(img.windowLen, img.windowWarm)
	if err != nil {
		panic(fmt.Sprintf("window length validated at start: %v", err)) // unreachable
	}
	return &sequence{
		key: key, container: container, img: img, win: win, cusum: markov.Cusum{K: img.cusumK, Cap: img.cusumCap},
		acc: markov.NewMeanSequence(), lastSeen: now,
		pendHist: markov.History{},
	}
}

// stepResult is one scored event.
type stepResult struct {
	sym    markov.Symbol
	step   markov.Step
	window float64
	full   bool // the window is Ready: its score may alert and calibrates
	rose   bool // the online score rose at this event (a window score always may)
	oov    bool
}

// step scores the event name as the next of seq. The model is not changed.
func (img *image) step(seq *sequence, name string) stepResult {
	sym := img.model.Lookup(name)
	if sym == markov.OOV {
		sym = img.model.Intern(name) // room left: a new symbol; else stays OOV
	}
	st := img.model.Score(&seq.hist, sym)
	win := seq.win.Push(sym, st)
	seq.acc.Add(st)
	seq.events++
	r := stepResult{sym: sym, step: st, window: win, full: seq.win.Ready(), rose: true, oov: sym == markov.OOV}
	if img.cusumK > 0 {
		// Judged from the first event: the score starts at 0 (or at its
		// parent's, see inherit) and only unlikely events raise it.
		before := seq.cusum.S
		r.window, r.full = seq.cusum.Push(st.Surprise), true
		r.rose = r.window > before
	}
	return r
}

// learnDelay is how many newer events must follow an event, alarm down,
// before it is learned; shorter sequences are judged whole at their end.
// It must outlast the online score's reaction to an attack's first events:
// the window mean needs many events to rise, a CUSUM a few, and a shorter
// delay lets a long-lived process's steady behaviour reach the baseline
// (and its graduation) that much sooner.
const (
	learnDelay      = 1024
	learnDelayCusum = 128
)

// learnDelay returns the image's learning delay.
func (img *image) learnDelay() int {
	if img.cusumK > 0 {
		return learnDelayCusum
	}
	return learnDelay
}

// deferLearn queues the event just scored (call it after the alarm was
// updated for it and before advance); the event leaving the queue now is
// learned unless it was queued while, or before, the alarm was on (held).
// It returns whether an event was held back.
func (img *image) deferLearn(seq *sequence, r stepResult) (heldBack bool) {
	if len(seq.pend)-seq.phead == 0 {
		seq.pend, seq.phead = seq.pend[:0], 0
		seq.pendHist = seq.hist
	}
	seq.pend = append(seq.pend, r.sym)
	if seq.alarm.On() {
		seq.held = len(seq.pend) - seq.phead // this event and all queued before it
	}
	delay := img.learnDelay()
	if len(seq.pend)-seq.phead <= delay {
		return false
	}
	out := seq.pend[seq.phead]
	seq.phead++
	if seq.phead > delay { // reclaim the consumed half
		seq.pend = append(seq.pend[:0], seq.pend[seq.phead:]...)
		seq.phead = 0
	}
	if seq.held > 0 {
		seq.held--
		heldBack = true
	} else {
		img.learn(&seq.pendHist, out)
	}
	seq.pendHist.Push(out)
	return heldBack
}

// flushPending learns the queued events when a sequence ends normally;
// after an alarm or an anomalous end they are dropped, and held events are
// dropped in any case.
func (img *image) flushPending(seq *sequence, learn bool) (heldBack int) {
	for i, sym := range seq.pend[seq.phead:] {
		if learn && i >= seq.held {
			img.learn(&seq.pendHist, sym)
		} else {
			heldBack++
		}
		seq.pendHist.Push(sym)
	}
	seq.pend, seq.phead, seq.held = nil, 0, 0
	return heldBack
}

// learn teaches the model one event.
func (img *image) learn(hist *markov.History, sym markov.Symbol) {
	if img.removed {
		return
	}
	novel := img.model.Learn(hist, sym)
	if img.learning() {
		novel = img.newPair(hist, sym)
	}
	img.conv.Observe(novel)
	img.dirty = true
	if img.conv.InBlock == 0 && img.learning() {
		img.blockDone()
	}
}

// newPair records the pair (previous symbol, sym) and reports whether it
// is new. Learning converges on these pairs, not on transitions of the
// model's full order: with argument-aware symbols a long history keeps
// meeting new interleavings of familiar steps (a request's accept between
// a worker's connects) long after the image's repertoire of steps and
// their successions is known, and the calibrated threshold accounts for
// that residual novelty. The set lives only while the image learns, and is
// bounded.
func (img *image) newPair(hist *markov.History, sym markov.Symbol) bool {
	var buf [markov.MaxOrder]markov.Symbol
	prev := uint32(0xffff) // the start of a sequence
	if h := hist.Symbols(buf[:0]); len(h) > 0 {
		prev = uint32(h[len(h)-1])
	}
	k := prev<<16 | uint32(sym)
	if _, ok := img.pairs[k]; ok {
		return false
	}
	if img.pairs == nil {
		img.pairs = make(map[uint32]struct{})
	}
	if len(img.pairs) < maxPairs {
		img.pairs[k] = struct{}{}
	}
	return true
}

// maxPairs bounds the learning-time pair set (16 bytes an entry or so).
const maxPairs = 1 << 16

// blockDone records a completed block of learned events: its novelty rate
// for the plateau test, and a turn of the calibration samples, which cover
// the latest learning_blocks..2·learning_blocks blocks (the stretch on which
// graduation is judged, not the steep start of the learning curve).
func (img *image) blockDone() {
	w := img.conv.Blocks
	img.blockRates = append(img.blockRates, img.conv.LastRate)
	if len(img.blockRates) > 2*w {
		img.blockRates = img.blockRates[1:]
	}
	if img.conv.Events/img.conv.Block%uint64(w) == 0 {
		img.win.rotate(img.needWin)
		img.end.rotate(img.needEnd)
	}
}

// plateaued reports whether the learning curve has flattened: over the
// latest learning_blocks blocks the rate of never-seen transitions fell by
// less than a fifth compared with the blocks before. Some images keep
// meeting new transitions at a steady rate (a shell, a build container):
// their baseline is as complete as it will get, and their calibrated
// threshold accounts for that novelty.
func (img *image) plateaued() bool {
	w := img.conv.Blocks
	if len(img.blockRates) < 2*w {
		return false
	}
	var before, recent float64
	for i, r := range img.blockRates {
		if i < w {
			before += r
		} else {
			recent += r
		}
	}
	return recent >= plateauRatio*before
}

// plateauRatio: a learning curve that still falls by a fifth per
// learning_blocks blocks is still learning.
const plateauRatio = 0.8

// advance moves seq's history past the event just scored.
func (img *image) advance(seq *sequence, r stepResult) { seq.hist.Push(r.sym) }

// sampleWindow records a learning-stream window score for calibration. The
// score was computed before the event was learned, so it is held out.
func (img *image) sampleWindow(r stepResult) {
	if r.full {
		img.win.Cur.add(r.window)
	}
}

// sampleEnd records a learning-stream end-of-sequence score.
func (img *image) sampleEnd(seq *sequence) {
	if seq.acc.Len() >= minEndEvents {
		img.end.Cur.add(seq.acc.Score())
	}
}

// ready reports whether the baseline may graduate: its counts converged
// (few new transitions, or a flat learning curve), it holds enough
// held-out window scores to place a threshold for the alert budget (at
// least 1/rate of them, or the top score would be a guess), and its model
// still holds the events graduation needs: the rolling horizon may have
// taken a slow learner's early counts away (expireThin would send it
// straight back).
func (img *image) ready(cfg Config) bool {
	return (img.conv.Converged() || img.plateaued()) && img.win.n() >= img.needWin &&
		img.model.Events() >= cfg.graduationFloor()
}

// graduate moves the image to monitoring with its window threshold
// calibrated on its own learning stream for the alert budget.
func (img *image) graduate(now time.Time, cfg Config) {
	img.state = scorer.StateMonitoring
	img.pairs = nil
	img.graduated = now
	img.threshold = onlineThreshold(cfg, img.win.threshold(cfg.AlertBudget/1e6))
	img.calibrateEnd(cfg)
	img.dirty = true
}

// onlineThreshold is the online threshold of a graduating image: the
// calibrated one, or the fixed CUSUM threshold when one is configured.
func onlineThreshold(cfg Config, calibrated float64) float64 {
	if cfg.Online == OnlineCusum && cfg.CusumThreshold > 0 {
		return cfg.CusumThreshold
	}
	return calibrated
}

// calibrateEnd sets the end-of-sequence threshold once enough finished
// normal sequences were seen (1/rate of them); until then whole-sequence
// verdicts stay off and finished sequences that raised no alarm keep
// feeding the sample.
func (img *image) calibrateEnd(cfg Config) {
	if img.end.n() >= img.needEnd {
		img.endThreshold = img.end.threshold(cfg.EndAlertRate)
	}
}

func (img *image) endCalibrated() bool { return !math.IsInf(img.endThreshold, 1) }

func (img *image) endScore(seq *sequence) float64 { return seq.acc.Score() }

// explain lists the least likely transitions of seq's window.
func (img *image) explain(seq *sequence, k int) *scorer.Explanation {
	syms := seq.win.WindowSymbols()
	e := &scorer.Explanation{Window: make([]string, len(syms))}
	for i, s := range syms {
		e.Window[i] = img.model.Name(s)
	}
	// A loop repeats its transitions: list each distinct one once.
	seen := make(map[string]bool, k)
	for _, t := range img.model.Explain(seq.win, len(syms)) {
		h := make([]string, len(t.History))
		for j, s := range t.History {
			h[j] = img.model.Name(s)
		}
		tr := scorer.Transition{History: h, Symbol: img.model.Name(t.Symbol),
			Probability: t.Probability, Surprise: t.Surprise, HistorySeen: t.HistorySeen}
		key := strings.Join(h, " ") + " → " + tr.Symbol
		if seen[key] {
			continue
		}
		seen[key] = true
		e.Transitions = append(e.Transitions, tr)
		if len(e.Transitions) == k {
			break
		}
	}
	return e
}

// topK keeps the K highest scores of a stream and how many there were: all
// a threshold for a small alert rate needs, in constant space.
type topK struct {
	N   uint64    `json:"n"`
	Top []float64 `json:"top"` // descending
}

const topKSize = 64

func (t *topK) add(x float64) {
	t.N++
	if len(t.Top) == topKSize && x <= t.Top[topKSize-1] {
		return
	}
	i, _ := slices.BinarySearchFunc(t.Top, x, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	t.Top = slices.Insert(t.Top, i, x)
	if len(t.Top) > topKSize {
		t.Top = t.Top[:topKSize]
	}
}

// calib holds the calibration sample of two consecutive spans of learning
// blocks: the threshold comes from both, and each rotation forgets the older.
type calib struct {
	Prev topK `json:"prev"`
	Cur  topK `json:"cur"`
}

// rotate starts a new span. The older span is forgotten only when the
// newer one alone holds the need values a threshold requires; otherwise
// the two are merged, so a scarce sample (finished processes, or a small
// learning_block_events) keeps growing from the start of learning.
func (c *calib) rotate(need uint64) {
	if c.Cur.N >= need {
		c.Prev, c.Cur = c.Cur, topK{}
		return
	}
	c.Prev = c.merged()
	c.Cur = topK{}
}

func (c *calib) merged() topK {
	all := topK{N: c.n()}
	all.Top = append(append(all.Top, c.Prev.Top...), c.Cur.Top...)
	slices.SortFunc(all.Top, func(a, b float64) int { return cmp.Compare(b, a) })
	if len(all.Top) > topKSize {
		all.Top = all.Top[:topKSize]
	}
	return all
}

func (c *calib) n() uint64 { return c.Prev.N + c.Cur.N }

func (c *calib) threshold(rate float64) float64 {
	all := c.merged()
	return all.threshold(rate)
}

// threshold returns the score that a fraction rate of the stream is
// expected to exceed. Where the kept top values reach that rank, it is the
// empirical quantile; for rarer rates (an alert budget of a few per million
// events, calibrated on tens of thousands) it extrapolates with a
// peaks-over-threshold fit: above the lowest kept value u, exceedances of a
// light-tailed score are close to exponential, with mean excess β, so the
// score exceeded at rate r is u + β·ln(p_u/r), p_u being the fraction of the
// stream above u. That is far less noisy than taking the second-highest
// value seen. Without values it returns +Inf (never alert).
func (t *topK) threshold(rate float64) float64 {
	n := len(t.Top)
	if n == 0 || t.N == 0 {
		return math.Inf(1)
	}
	k := int(rate * float64(t.N))
	if n < topKSize || k >= n-1 {
		// Few values, or a rate the kept values resolve: empirical.
		return t.Top[min(k, n-1)]
	}
	u := t.Top[n-1]
	var excess float64
	for _, v := range t.Top[:n-1] {
		excess += v - u
	}
	beta := excess / float64(n-1)
	pu := float64(n-1) / float64(t.N)
	return u + beta*math.Log(pu/rate)
}
