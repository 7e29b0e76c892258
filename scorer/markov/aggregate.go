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
// histogram of 1/8-bit bins, interpolating inside the bin. On per-event
// surprise values it ranks sequences like the exact quantile; the P²
// estimator was measured and lost 0.015 AUC. The zero value is not ready:
// use NewQuantile.
//
// A short stream touches few bins, and a service holds 100,000s of these
// (one per live sequence): the histogram is kept as up to quantileSparse
// (bin, count) pairs in the struct and becomes the dense 768-byte array
// only when a stream touches more bins. Both forms hold the same counts,
// so every estimate is the same. Do not copy a Quantile (or a Sequence)
// that may have gone dense and keep adding to either: the copies would
// share the dense bins.
type Quantile struct {
	p      float64
	n      uint64                   // values added
	w      uint64                   // total weight in bins (less than n after halving)
	dense  *[histBins]uint16        // nil while sparse
	sparse [quantileSparse]binCount // bins in increasing order, first nsp used
	nsp    uint8
}

const quantileSparse = 12

type binCount struct{ bin, count uint16 }

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
	c := e.slot(i)
	if *c == 1<<16-1 {
		e.halve()
		c = e.slot(i)
	}
	*c++
	e.w++
}

// slot returns the count of bin i, adding the bin (or going dense) if the
// stream has not touched it before.
func (e *Quantile) slot(i int) *uint16 {
	if e.dense != nil {
		return &e.dense[i]
	}
	sp := e.sparse[:e.nsp]
	k := 0
	for k < len(sp) && int(sp[k].bin) < i {
		k++
	}
	if k < len(sp) && int(sp[k].bin) == i {
		return &e.sparse[k].count
	}
	if len(sp) == quantileSparse {
		e.dense = new([histBins]uint16)
		for _, b := range sp {
			e.dense[b.bin] = b.count
		}
		e.sparse, e.nsp = [quantileSparse]binCount{}, 0
		return &e.dense[i]
	}
	copy(e.sparse[k+1:e.nsp+1], e.sparse[k:e.nsp])
	e.sparse[k] = binCount{bin: uint16(i)}
	e.nsp++
	return &e.sparse[k].count
}

// halve halves every bin (a bin is about to overflow): quantiles are
// preserved up to rounding.
func (e *Quantile) halve() {
	e.w = 0
	if e.dense != nil {
		for j := range e.dense {
			e.dense[j] = (e.dense[j] + 1) / 2
			e.w += uint64(e.dense[j])
		}
		return
	}
	for j := range e.sparse[:e.nsp] {
		e.sparse[j].count = (e.sparse[j].count + 1) / 2
		e.w += uint64(e.sparse[j].count)
	}
}

// each calls fn for every bin with a non-zero count, in bin order, until
// fn returns false.
func (e *Quantile) each(fn func(bin int, c uint16) bool) {
	if e.dense != nil {
		for i, c := range e.dense {
			if c != 0 && !fn(i, c) {
				return
			}
		}
		return
	}
	for _, b := range e.sparse[:e.nsp] {
		if b.count != 0 && !fn(int(b.bin), b.count) {
			return
		}
	}
}

// Value returns the estimate (0 before any value).
func (e *Quantile) Value() float64 {
	if e.w == 0 {
		return 0
	}
	target := e.p * float64(e.w)
	var cum float64
	v, found := 0.0, false
	e.each(func(i int, c uint16) bool {
		if cum+float64(c) >= target {
			frac := (target - cum) / float64(c)
			v, found = histLow+(float64(i)+frac)*histBinWidth, true
			return false
		}
		cum += float64(c)
		return true
	})
	if found {
		return v
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
	e.each(func(i int, c uint16) bool {
		from, to := cum, cum+float64(c)
		cum = to
		if to <= a {
			return true
		}
		if from >= b {
			return false
		}
		in := min(to, b) - max(from, a)
		sum += in * (histLow + (float64(i)+0.5)*histBinWidth)
		wt += in
		return true
	})
	if wt == 0 {
		return e.Value()
	}
	return sum / wt
}

// Aggregation settings chosen by measurement on ADFA-LD
// (scorer/evaluate/RESULTS.md): the whole-sequence score is the mean
// per-event surprise (NewSequence), and the online score is the mean
// surprise over the last DefaultWindowLength events, which may alert from
// the DefaultWindowWarmup-th event of a sequence on (a growing window until
// it is full). Longer memory raises the separation of normal and attack
// sequences steadily; the warm-up keeps the detection delay of a short
// window. Its online threshold is calibrated with a tail fit
// (TailThreshold).
//
// The mean surprise replaced a trimmed mean of per-event Excess (the band
// between DefaultBandLow and DefaultBandHigh of surprise minus context
// entropy), which ranked best on one split but got worse as the model
// learned more normal data: with more data the contexts' entropy grows, the
// excess of normal and attack events alike shrinks, and the band drops each
// trace's most surprising events. A baseline that keeps learning must get
// better with data; the mean surprise at order 10 does on every split
// measured.
const (
	// DefaultBandLow and DefaultBandHigh are the former sequence score's
	// band (NewExcessBandSequence), kept to measure it.
	DefaultBandLow      = 0.5
	DefaultBandHigh     = 0.8
	DefaultWindowLength = 300
	DefaultWindowWarmup = 30
	MaxWindowLength     = 1024
)

// Sequence accumulates one sequence's end-of-sequence score in constant
// space: the mean per-event surprise (bits per event), and the share of
// novel events (Step.Novel: events whose full-length n-gram the model never
// counted, the covering rate). The legacy excess band, kept for
// measurement, holds a histogram (about 800 bytes once dense). The zero
// value is the mean-surprise accumulator.
type Sequence struct {
	sum    float64
	n      int
	novel  int
	band   bool // legacy: band mean of Excess
	q      Quantile
	lo, hi float64
}

// NewMeanSequence returns the default end-of-sequence accumulator: the mean
// per-event surprise.
func NewMeanSequence() Sequence { return Sequence{} }

// NewExcessBandSequence returns the former end-of-sequence score, the mean
// per-event Excess between the lo- and hi-quantiles, 0 ≤ lo < hi ≤ 1: for
// evaluation only (it gets worse as the model learns more, see
// RESULTS.md).
func NewExcessBandSequence(lo, hi float64) Sequence {
	return Sequence{band: true, q: NewQuantile((lo + hi) / 2), lo: lo, hi: hi}
}

// Add adds one scored event.
// A surprise that is NaN or above windowMaxBits (a probability under
// 2^-64, beyond any smoothed model's floor) counts as 0 or windowMaxBits,
// as in Window, so no input can make the score NaN or infinite.
func (s *Sequence) Add(st Step) {
	s.n++
	s.sum += windowClamp(st.Surprise)
	if st.Novel() {
		s.novel++
	}
	if s.band {
		s.q.Add(st.Excess())
	}
}

// Score returns the sequence score so far (0 for an empty sequence).
func (s *Sequence) Score() float64 {
	if s.band {
		return s.q.BandMean(s.lo, s.hi)
	}
	if s.n == 0 {
		return 0
	}
	return s.sum / float64(s.n)
}

// CoverRate returns the share of the sequence's events that were novel
// (their full-length n-gram never counted), 0 for an empty sequence.
func (s *Sequence) CoverRate() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.novel) / float64(s.n)
}

// Len returns the number of events added.
func (s *Sequence) Len() int { return s.n }

// Reset empties the accumulator for a new sequence.
func (s *Sequence) Reset() {
	if s.band {
		*s = NewExcessBandSequence(s.lo, s.hi)
		return
	}
	*s = Sequence{}
}

// Window is the online state of one sequence: the per-event surprises of
// the last Length events, their symbols, and the symbols just before them
// (so that Model.Explain can recompute each transition). Push is O(1); it
// allocates only while the window grows to its length (doubling).
type Window struct {
	vals   []uint16 // surprises, in units of windowUnit bits: grows to length, then a ring of the last length
	syms   []Symbol // ring of the last explained()+MaxOrder-1 symbols
	length int      // events the window covers once full
	warm   int      // events before Score may alert (Ready)
	n      int      // events pushed (saturates at length+MaxOrder-1)
	pos    int      // next slot in syms
	vpos   int      // next slot in vals once full
	sum    uint64   // sum of vals: integer, so it never drifts
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

func windowClamp(bits float64) float64 {
	switch {
	case !(bits > 0):
		return 0
	case bits >= windowMaxBits:
		return windowMaxBits
	}
	return bits
}

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
	// vals grows with the sequence: most processes end long before a
	// window of hundreds of events fills, and a service holds 100,000s.
	return &Window{vals: make([]uint16, 0, min(length, 16)), syms: make([]Symbol, min(length, ExplainEvents)+MaxOrder-1),
		length: length, warm: min(warm, length)}, nil
}

// Push adds one scored event and returns the window score.
func (w *Window) Push(s Symbol, st Step) float64 {
	v := windowQuantize(st.Surprise)
	if len(w.vals) < w.length {
		if len(w.vals) == cap(w.vals) {
			w.vals = append(make([]uint16, 0, min(2*cap(w.vals), w.length)), w.vals...)
		}
		w.vals = append(w.vals, v)
	} else {
		w.sum -= uint64(w.vals[w.vpos])
		w.vals[w.vpos] = v
		w.vpos = (w.vpos + 1) % w.length
	}
	w.sum += uint64(v)
	w.syms[w.pos] = s
	w.pos = (w.pos + 1) % len(w.syms)
	if w.n < w.length+MaxOrder-1 { // saturates once both rings are full
		w.n++
	}
	return w.Score()
}

// Score returns the mean surprise over the window's events (fewer than
// Length at the start of a sequence; 0 before any event).
func (w *Window) Score() float64 {
	k := len(w.vals)
	if k == 0 {
		return 0
	}
	return float64(w.sum) * windowUnit / float64(k)
}

// Full reports whether Length events have been pushed.
func (w *Window) Full() bool { return w.n >= w.length }

// Ready reports whether Warmup events have been pushed: only then may Score
// alert, and only then is it compared with (or sampled for) the calibrated
// threshold.
func (w *Window) Ready() bool { return w.n >= w.warm }

// Length returns the configured window length.
func (w *Window) Length() int { return w.length }

// Warmup returns the events needed before the window is Ready.
func (w *Window) Warmup() int { return w.warm }

// Reset empties the window for a new sequence, keeping its buffers.
func (w *Window) Reset() {
	w.vals = w.vals[:0]
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
