package pipeline

import (
	"cmp"
	"container/list"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
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
	// learnFrom and learnTo bound, in event time, what the baseline saw
	// since it (re)started learning: learning_min_duration is judged on
	// them, so a replayed capture learns as long as the live stream did.
	learnFrom, learnTo time.Time
	graduated          time.Time
	lastSeen           time.Time
	inherited          string
	symbols            string    // the symbol language of the counts (symbol.Config.Fingerprint)
	symbolsSince       time.Time // counts in buckets before this one's are of another language
	oldestBucket       time.Time // counts from buckets before this were subtracted (rolling horizon)
	win                calib     // ready-window scores of the recent learning stream (calibration)
	end                calib     // end-of-sequence scores of the recent learning stream
	blockRates         []float64 // new-transition rates of the latest 2·learning_blocks blocks (plateau test)
	dirty              bool      // learned since the last flush
	windowLen          int
	windowWarm         int
	cusumK             float64             // the CUSUM allowance when the online score is a CUSUM; 0: the window mean
	cusumCap           float64             // the most one event adds to the CUSUM
	pairs              map[uint32]struct{} // (previous, symbol) pairs learned, while learning (newPair)
	elem               *list.Element       // in the worker's image LRU
	removed            bool                // evicted or reset: learns nothing more (its counts would be lost)
	flushed            time.Time           // bucket of the latest flush; an older one is closed and can be compacted
	needWin            uint64              // window scores a threshold for the alert budget needs
	needEnd            uint64              // finished processes an end-of-sequence threshold needs
	// retryLoad is set on a stand-in for a stored baseline that could not be
	// read: it learns meanwhile, but its flushes add counts without
	// replacing the stored state, and its next event from retryLoad on
	// tries the load again.
	retryLoad time.Time
}

func newConvergence(cfg Config) markov.Convergence {
	conv := markov.NewConvergence()
	conv.Block = cfg.LearningBlockEvents
	conv.Blocks = cfg.LearningBlocks
	conv.Bound = cfg.NewTransitionRate
	return conv
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
	img.learnFrom, img.learnTo = time.Time{}, time.Time{}
	img.dirty = true
}

func (img *image) learning() bool { return img.state != scorer.StateMonitoring }

func (img *image) maturity() scorer.Maturity {
	st := img.model.Stats()
	return scorer.Maturity{
		State: img.state, Events: st.Events, Transitions: uint64(st.Transitions),
		Since: img.since, Inherited: img.inherited,
	}
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

// explainTree explains an alert that root's subtree raised about seq: seq's
// own window, and the descendants' steps that raised root's subtree score,
// least likely first.
func (img *image) explainTree(seq, root *sequence, k int) *scorer.Explanation {
	e := img.window(seq.win.WindowSymbols())
	if root.treeLog == nil {
		return e
	}
	steps := root.treeLog.latest()
	slices.SortStableFunc(steps, func(a, b treeStep) int { return cmp.Compare(b.surprise, a.surprise) })
	var buf [markov.MaxOrder]markov.Symbol
	for _, st := range steps[:min(k, len(steps))] {
		hist := st.hist.Symbols(buf[:0])
		hist = hist[max(0, len(hist)-(img.model.Config().Order-1)):]
		h := make([]string, len(hist))
		for j, s := range hist {
			h[j] = img.model.Name(s)
		}
		e.Transitions = append(e.Transitions, scorer.Transition{History: h, Symbol: img.model.Name(st.sym),
			Probability: math.Exp2(-st.surprise), Surprise: st.surprise, HistorySeen: st.seen})
	}
	return e
}

// window is an explanation holding a window's symbols, readable.
func (img *image) window(syms []markov.Symbol) *scorer.Explanation {
	e := &scorer.Explanation{Window: make([]string, len(syms))}
	for i, s := range syms {
		e.Window[i] = img.model.Name(s)
	}
	return e
}

// explain lists the least likely transitions of seq's window.
func (img *image) explain(seq *sequence, k int) *scorer.Explanation {
	syms := seq.win.WindowSymbols()
	e := img.window(syms)
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
