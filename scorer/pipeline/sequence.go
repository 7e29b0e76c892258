package pipeline

import (
	"fmt"
	"slices"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// sequence is one live syscall trace (a process, or a container).
type sequence struct {
	key       seqKey
	parent    seqKey // the parent process's sequence when this one started (tree evidence)
	hasParent bool
	container string
	proc      string // the process name of its latest event (an exec renames it)
	img       *image
	hist      markov.History
	win       *markov.Window
	cusum     markov.Cusum // the online score when the image's is a CUSUM
	// tree is the same CUSUM over the events of this process and of its
	// descendants (tree_evidence), with its own alarm: a subtree's
	// episode raises one alert, about the process whose event raised it.
	tree      markov.Cusum
	treeAlarm markov.Alarm
	joined    bool     // a subtree alert named this process; its own score has not fallen back to 0 since
	treeLog   *treeLog // the latest descendants' steps that raised tree; nil until one did
	acc       markov.Sequence
	alarm     markov.Alarm
	alerted   bool
	events    int
	lastSeen  time.Time   // processing time, for idle eviction
	lastEvent time.Time   // event time of the latest event
	peak      float64     // highest window score of the current episode
	alertedOn []alertMark // the steps this process alerted on lately (repeat_interval), oldest first

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
		tree: markov.Cusum{K: img.cusumK, Cap: img.cusumCap},
		acc:  markov.NewMeanSequence(), lastSeen: now,
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

// advance moves seq's history past the event just scored.
func (img *image) advance(seq *sequence, r stepResult) { seq.hist.Push(r.sym) }

// treeLog keeps the latest steps of a process's descendants that raised
// its subtree score, to explain an alert the subtree raises. It exists only
// for processes with such descendants (a few hundred bytes each).
type treeLog struct {
	steps [treeLogLen]treeStep
	n     int // steps ever added
}

// treeStep is one such step: the descendant's history before it, the
// symbol, and what the model said of it.
type treeStep struct {
	hist     markov.History
	sym      markov.Symbol
	surprise float64
	seen     uint64
}

// treeLogLen: enough for the few steps that make a subtree's episode.
const treeLogLen = 4

func (l *treeLog) add(st treeStep) {
	l.steps[l.n%treeLogLen] = st
	l.n++
}

// latest returns a copy of the kept steps, oldest first.
func (l *treeLog) latest() []treeStep {
	if l.n <= treeLogLen {
		return slices.Clone(l.steps[:l.n])
	}
	i := l.n % treeLogLen
	return append(slices.Clone(l.steps[i:]), l.steps[:i]...)
}

// alertMark is a step a process alerted on, and when (event time).
type alertMark struct {
	sym markov.Symbol
	at  time.Time
}

// maxAlertMarks bounds the steps a process remembers for folding repeats.
const maxAlertMarks = 8

// repeats reports whether seq already alerted on sym within interval of
// t (either way: a replayed stream or a clock stepping back must not fold
// for longer): the alarm is a repeat, folded into that alert.
func (seq *sequence) repeats(sym markov.Symbol, t time.Time, interval time.Duration) bool {
	if interval <= 0 {
		return false
	}
	for _, m := range seq.alertedOn {
		if d := t.Sub(m.at); m.sym == sym && d < interval && d > -interval {
			return true
		}
	}
	return false
}

// calmTree ends seq's subtree episode and forgets what it alerted on and
// what its descendants did: state judged against a baseline that has since
// gone back to learning, or that has just graduated, means nothing for the
// next verdict or its explanation.
func (seq *sequence) calmTree() {
	seq.treeAlarm, seq.joined, seq.alertedOn, seq.treeLog = markov.Alarm{}, false, nil, nil
}

// markAlerted remembers that seq alerted on sym at t.
func (seq *sequence) markAlerted(sym markov.Symbol, t time.Time) {
	if i := slices.IndexFunc(seq.alertedOn, func(m alertMark) bool { return m.sym == sym }); i >= 0 {
		seq.alertedOn = slices.Delete(seq.alertedOn, i, i+1)
	}
	if len(seq.alertedOn) == maxAlertMarks {
		seq.alertedOn = slices.Delete(seq.alertedOn, 0, 1)
	}
	seq.alertedOn = append(seq.alertedOn, alertMark{sym: sym, at: t})
}
