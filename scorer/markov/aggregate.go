package markov

import (
	"fmt"
	"math"
)

// Histogram bins for Sequence: per-event values are counted in bins of
// histBinWidth bits over [histLow, histLow+histBins·histBinWidth); values
// outside fall into the end bins.
const (
	histBins     = 384
	histBinWidth = 0.125
	histLow      = -16.0
)

// Quantile estimates a quantile of a stream in constant space with a fixed
// histogram of 1/8-bit bins (768 bytes), interpolating inside the bin. On
// per-event surprise values it ranks sequences like the exact quantile;
// the P² estimator was measured and lost 0.015 AUC. The zero value is not
// ready: use NewQuantile.
type Quantile struct {
	p    float64
	n    uint64 // values added
	w    uint64 // total weight in bins (less than n after halving)
	bins [histBins]uint16
}

// NewQuantile returns an estimator of the p-quantile, p in (0,1).
func NewQuantile(p float64) Quantile { return Quantile{p: p} }

// Add adds one value. NaN is ignored.
func (e *Quantile) Add(x float64) {
	if x != x {
		return
	}
	i := int((x - histLow) / histBinWidth)
	i = min(max(i, 0), histBins-1)
	e.n++
	if e.bins[i] == 1<<16-1 {
		// Halve every bin: quantiles are preserved up to rounding.
		e.w = 0
		for j := range e.bins {
			e.bins[j] = (e.bins[j] + 1) / 2
			e.w += uint64(e.bins[j])
		}
	}
	e.bins[i]++
	e.w++
}

// Value returns the estimate (0 before any value).
func (e *Quantile) Value() float64 {
	if e.w == 0 {
		return 0
	}
	target := e.p * float64(e.w)
	var cum float64
	for i, c := range e.bins {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= target {
			frac := (target - cum) / float64(c)
			return histLow + (float64(i)+frac)*histBinWidth
		}
		cum += float64(c)
	}
	return histLow + histBins*histBinWidth
}

// Count returns the number of values added.
func (e *Quantile) Count() int { return int(e.n) }

// BandMean returns the mean of the values between the lo- and hi-quantiles
// (an L-estimator: a trimmed mean of the upper-middle of the distribution),
// 0 before any value. lo < hi, both in [0,1].
func (e *Quantile) BandMean(lo, hi float64) float64 {
	if e.w == 0 {
		return 0
	}
	a, b := lo*float64(e.w), hi*float64(e.w)
	var cum, sum, wt float64
	for i, c := range e.bins {
		if c == 0 {
			continue
		}
		from, to := cum, cum+float64(c)
		cum = to
		if to <= a {
			continue
		}
		if from >= b {
			break
		}
		in := min(to, b) - max(from, a)
		sum += in * (histLow + (float64(i)+0.5)*histBinWidth)
		wt += in
	}
	if wt == 0 {
		return e.Value()
	}
	return sum / wt
}

// Aggregation settings chosen by measurement on ADFA-LD
// (scorer/evaluate/RESULTS.md): the whole-sequence score is the mean of
// per-event Excess between its DefaultBandLow and DefaultBandHigh quantiles
// (a trimmed mean of the upper middle: neither a few rare calls, nor the
// mass of routine ones, nor the trace's length dominates it), and the online
// score is the mean surprise over the last DefaultWindowLength events, which
// may alert from the DefaultWindowWarmup-th event of a sequence on (a
// growing window until it is full). Longer memory raises the separation of
// normal and attack sequences steadily (online AUC 0.74 at 60 events, 0.83
// at 300); the warm-up keeps the detection delay of a short window (an
// anomalous start alerts after 30 events, not 300). Its online threshold
// is calibrated with a tail fit (TailThreshold); with the empirical
// quantile, windows longer than 60 events miss the calibration tolerance.
const (
	DefaultBandLow      = 0.5
	DefaultBandHigh     = 0.8
	DefaultWindowLength = 300
	DefaultWindowWarmup = 30
	MaxWindowLength     = 1024
)

// Sequence accumulates one sequence's end-of-sequence score in constant
// space (a histogram, about 800 bytes). The zero value is not ready: use
// NewSequence.
type Sequence struct {
	q      Quantile
	lo, hi float64
}

// NewSequence returns an accumulator of the mean per-event Excess between
// the lo- and hi-quantiles, 0 ≤ lo < hi ≤ 1 (use DefaultBandLow and
// DefaultBandHigh).
func NewSequence(lo, hi float64) Sequence {
	return Sequence{q: NewQuantile((lo + hi) / 2), lo: lo, hi: hi}
}

// Add adds one scored event.
func (s *Sequence) Add(st Step) { s.q.Add(st.Excess()) }

// Score returns the sequence score so far (0 for an empty sequence).
func (s *Sequence) Score() float64 { return s.q.BandMean(s.lo, s.hi) }

// Len returns the number of events added.
func (s *Sequence) Len() int { return s.q.Count() }

// Reset empties the accumulator for a new sequence.
func (s *Sequence) Reset() { *s = NewSequence(s.lo, s.hi) }

// Window is the online state of one sequence: the per-event surprises of
// the last Length events, their symbols, and the symbols just before them
// (so that Model.Explain can recompute each transition). Push is O(1) and
// does not allocate.
type Window struct {
	vals []uint16 // ring of the last len(vals) surprises, in units of windowUnit bits
	syms []Symbol // ring of the last explained()+MaxOrder-1 symbols
	warm int      // events before Score may alert (Ready)
	n    int      // events pushed (saturates at len(vals)+MaxOrder-1)
	pos  int      // next slot in syms
	vpos int      // next slot in vals
	sum  uint64   // sum of vals: integer, so it never drifts
}

// Surprises are held in fixed point: 2 bytes instead of 4 per event per
// live sequence (a service holds 100,000s of windows), exact running sums,
// and a resolution far below anything a threshold separates. A surprise
// above windowMaxBits (a probability under 2^-64, far beyond any smoothed
// model's floor) is held as windowMaxBits.
const (
	windowUnit    = 1.0 / 1024
	windowMaxBits = 65535 * windowUnit
)

func windowQuantize(bits float64) uint16 {
	switch {
	case !(bits > 0): // NaN or ≤ 0
		return 0
	case bits >= windowMaxBits:
		return 65535
	}
	return uint16(math.Round(bits / windowUnit))
}

// NewWindow returns a window of length events (1..MaxWindowLength) that is
// Ready once full.
func NewWindow(length int) (*Window, error) { return NewWarmWindow(length, length) }

// NewWarmWindow returns a window of length events (1..MaxWindowLength) that
// is Ready after min(warm, length) events (warm ≥ 1): until it is full its
// score is the mean over all the events so far (a growing window).
func NewWarmWindow(length, warm int) (*Window, error) {
	if length < 1 || length > MaxWindowLength {
		return nil, fmt.Errorf("window length: %d not in [1,%d]", length, MaxWindowLength)
	}
	if warm < 1 || warm > MaxWindowLength {
		return nil, fmt.Errorf("window warm-up: %d not in [1,%d]", warm, MaxWindowLength)
	}
	return &Window{vals: make([]uint16, length), syms: make([]Symbol, min(length, ExplainEvents)+MaxOrder-1), warm: min(warm, length)}, nil
}

// Push adds one scored event and returns the window score.
func (w *Window) Push(s Symbol, st Step) float64 {
	v := windowQuantize(st.Surprise)
	if w.n >= len(w.vals) {
		w.sum -= uint64(w.vals[w.vpos])
	}
	w.vals[w.vpos] = v
	w.sum += uint64(v)
	w.vpos = (w.vpos + 1) % len(w.vals)
	w.syms[w.pos] = s
	w.pos = (w.pos + 1) % len(w.syms)
	if w.n < len(w.vals)+MaxOrder-1 { // saturates once both rings are full
		w.n++
	}
	return w.Score()
}

// Score returns the mean surprise over the window's events (fewer than
// Length at the start of a sequence; 0 before any event).
func (w *Window) Score() float64 {
	k := min(w.n, len(w.vals))
	if k == 0 {
		return 0
	}
	return float64(w.sum) * windowUnit / float64(k)
}

// Full reports whether Length events have been pushed.
func (w *Window) Full() bool { return w.n >= len(w.vals) }

// Ready reports whether Warmup events have been pushed: only then may Score
// alert, and only then is it compared with (or sampled for) the calibrated
// threshold.
func (w *Window) Ready() bool { return w.n >= w.warm }

// Length returns the configured window length.
func (w *Window) Length() int { return len(w.vals) }

// Warmup returns the events needed before the window is Ready.
func (w *Window) Warmup() int { return w.warm }

// Reset empties the window for a new sequence, keeping its buffers.
func (w *Window) Reset() {
	clear(w.vals)
	w.n, w.pos, w.vpos, w.sum = 0, 0, 0, 0
}

// ExplainEvents is how many of a window's latest events an explanation
// covers: enough to show what raised the score, few enough to read in an
// alert, and 2 bytes per event per live sequence instead of a window's
// length.
const ExplainEvents = 64

// symbols returns the held symbols oldest first and how many of them
// precede the explained events (history only).
func (w *Window) symbols() (syms []Symbol, lead int) {
	k := min(w.n, len(w.syms))
	syms = make([]Symbol, 0, k)
	start := (w.pos - k + len(w.syms)) % len(w.syms)
	for i := 0; i < k; i++ {
		syms = append(syms, w.syms[(start+i)%len(w.syms)])
	}
	return syms, max(0, k-(len(w.syms)-MaxOrder+1))
}

// Alarm turns a score stream into alerts on the rising edge, with
// hysteresis: after firing at score ≥ high it re-arms only once the score
// falls below low, so one anomalous episode is one alert.
type Alarm struct {
	on bool
}

// Update returns true when the score rises to high or above while the alarm
// is armed.
func (a *Alarm) Update(score, high, low float64) (rising bool) {
	switch {
	case !a.on && score >= high:
		a.on = true
		return true
	case a.on && score < low:
		a.on = false
	}
	return false
}

// On reports whether the alarm is raised (an anomalous episode is ongoing).
func (a *Alarm) On() bool { return a.on }
