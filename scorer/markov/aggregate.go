package markov

import (
	"fmt"
	"slices"
)

// Quantile estimates one quantile of a stream in constant space with the P²
// algorithm (Jain and Chlamtac, 1985): five markers, adjusted with
// piecewise-parabolic interpolation. It is exact for up to five values. The
// zero value is not ready: use NewQuantile.
type Quantile struct {
	p  float64
	n  int        // values seen
	q  [5]float64 // marker heights
	at [5]float64 // marker positions (1-based)
	dn [5]float64 // desired positions
}

// NewQuantile returns an estimator of the p-quantile, p in (0,1).
func NewQuantile(p float64) Quantile {
	return Quantile{p: p}
}

// Add adds one value.
func (e *Quantile) Add(x float64) {
	if e.n < 5 {
		e.q[e.n] = x
		e.n++
		if e.n == 5 {
			slices.Sort(e.q[:])
			p := e.p
			e.at = [5]float64{1, 2, 3, 4, 5}
			e.dn = [5]float64{1, 1 + 2*p, 1 + 4*p, 3 + 2*p, 5}
		}
		return
	}
	e.n++
	var k int
	switch {
	case x < e.q[0]:
		e.q[0], k = x, 0
	case x >= e.q[4]:
		e.q[4], k = x, 3
	default:
		for k = 0; k < 3 && x >= e.q[k+1]; k++ {
		}
	}
	for i := k + 1; i < 5; i++ {
		e.at[i]++
	}
	p := e.p
	inc := [5]float64{0, p / 2, p, (1 + p) / 2, 1}
	for i := range e.dn {
		e.dn[i] += inc[i]
	}
	for i := 1; i <= 3; i++ {
		d := e.dn[i] - e.at[i]
		if (d >= 1 && e.at[i+1]-e.at[i] > 1) || (d <= -1 && e.at[i-1]-e.at[i] < -1) {
			s := 1.0
			if d < 0 {
				s = -1
			}
			qp := e.parabolic(i, s)
			if e.q[i-1] < qp && qp < e.q[i+1] {
				e.q[i] = qp
			} else {
				j := i + int(s)
				e.q[i] += s * (e.q[j] - e.q[i]) / (e.at[j] - e.at[i])
			}
			e.at[i] += s
		}
	}
}

func (e *Quantile) parabolic(i int, s float64) float64 {
	n, q := e.at, e.q
	return q[i] + s/(n[i+1]-n[i-1])*((n[i]-n[i-1]+s)*(q[i+1]-q[i])/(n[i+1]-n[i])+
		(n[i+1]-n[i]-s)*(q[i]-q[i-1])/(n[i]-n[i-1]))
}

// Value returns the estimate (0 before any value).
func (e *Quantile) Value() float64 {
	switch {
	case e.n == 0:
		return 0
	case e.n < 5:
		var v [5]float64
		copy(v[:], e.q[:e.n])
		slices.Sort(v[:e.n])
		return v[int(e.p*float64(e.n-1))]
	}
	return e.q[2]
}

// Count returns the number of values added.
func (e *Quantile) Count() int { return e.n }

// Aggregation settings chosen by measurement on ADFA-LD (README): a
// whole-sequence score is the SequenceQuantile of per-event Excess (a robust
// statistic: neither one rare call nor the trace's length dominates it), and
// the online score is the mean surprise over the last WindowLength events.
const (
	DefaultSequenceQuantile = 0.75
	DefaultWindowLength     = 30
	MaxWindowLength         = 1024
)

// Sequence accumulates one sequence's end-of-sequence score in constant
// space. The zero value is not ready: use NewSequence.
type Sequence struct {
	q Quantile
}

// NewSequence returns an accumulator of the p-quantile of per-event Excess
// (use DefaultSequenceQuantile).
func NewSequence(p float64) Sequence { return Sequence{q: NewQuantile(p)} }

// Add adds one scored event.
func (s *Sequence) Add(st Step) { s.q.Add(st.Excess()) }

// Score returns the sequence score so far (0 for an empty sequence).
func (s *Sequence) Score() float64 { return s.q.Value() }

// Len returns the number of events added.
func (s *Sequence) Len() int { return s.q.Count() }

// Window is the online state of one sequence: the per-event surprises of
// the last Length events, their symbols, and the symbols just before them
// (so that Model.Explain can recompute each transition). Push is O(1) and
// does not allocate.
type Window struct {
	vals []float32 // ring of the last len(vals) surprises
	syms []Symbol  // ring of the last len(vals)+MaxOrder-1 symbols
	n    int       // events pushed (saturates at len(syms))
	pos  int       // next slot in syms
	vpos int       // next slot in vals
	sum  float64   // sum of vals
}

// NewWindow returns a window of length events (1..MaxWindowLength).
func NewWindow(length int) (*Window, error) {
	if length < 1 || length > MaxWindowLength {
		return nil, fmt.Errorf("window length: %d not in [1,%d]", length, MaxWindowLength)
	}
	return &Window{vals: make([]float32, length), syms: make([]Symbol, length+MaxOrder-1)}, nil
}

// Push adds one scored event and returns the window score.
func (w *Window) Push(s Symbol, st Step) float64 {
	v := float32(st.Surprise)
	if w.n >= len(w.vals) {
		w.sum -= float64(w.vals[w.vpos])
	}
	w.vals[w.vpos] = v
	w.sum += float64(v)
	w.vpos = (w.vpos + 1) % len(w.vals)
	w.syms[w.pos] = s
	w.pos = (w.pos + 1) % len(w.syms)
	if w.n < len(w.syms) {
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
	return w.sum / float64(k)
}

// Full reports whether Length events have been pushed: only then is Score
// comparable with a threshold calibrated on full windows.
func (w *Window) Full() bool { return w.n >= len(w.vals) }

// Length returns the configured window length.
func (w *Window) Length() int { return len(w.vals) }

// Reset empties the window for a new sequence, keeping its buffers.
func (w *Window) Reset() {
	clear(w.vals)
	w.n, w.pos, w.vpos, w.sum = 0, 0, 0, 0
}

// symbols returns the held symbols oldest first and how many of them
// precede the window (history only).
func (w *Window) symbols() (syms []Symbol, lead int) {
	k := w.n
	syms = make([]Symbol, 0, k)
	start := (w.pos - k + len(w.syms)) % len(w.syms)
	for i := 0; i < k; i++ {
		syms = append(syms, w.syms[(start+i)%len(w.syms)])
	}
	return syms, max(0, k-len(w.vals))
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
