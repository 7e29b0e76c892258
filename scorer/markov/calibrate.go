package markov

import (
	"math"
	"slices"
	"unsafe"
)

// Threshold returns the score a rate of the normal sample exceeds: with
// scores compared as score > threshold, at most ceil(rate·n) of the n sample
// values alert. The threshold lies halfway between the last value kept and
// the first value allowed above, so small shifts do not flip ties. The
// sample is the scores of held-out normal data (never learned by the model
// that scores it). It returns +Inf for an empty sample and does not modify
// sample.
func Threshold(sample []float64, rate float64) float64 {
	n := len(sample)
	if n == 0 {
		return math.Inf(1)
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	k := int(math.Ceil(rate * float64(n)))
	switch {
	case k <= 0:
		return s[n-1]
	case k >= n:
		return math.Inf(-1)
	}
	return (s[n-k-1] + s[n-k]) / 2
}

// DefaultTailFraction is the share of the calibration sample that
// TailThreshold fits.
const DefaultTailFraction = 0.2

// TailThreshold is Threshold with the upper tail of the sample fitted
// rather than read off (peaks over threshold): above u, the value the top
// fraction tail of the sample exceeds, the excesses of a score that is a
// maximum over many windows are close to exponential (the Gumbel domain of
// attraction), with mean excess β, so the score exceeded at rate r is
// u + β·ln(p_u/r), p_u being the share of the sample above u. It uses every
// value above u instead of the one or two order statistics next to the
// target rank. For rate ≥ tail it returns Threshold. It returns +Inf for an
// empty sample and does not modify sample.
func TailThreshold(sample []float64, rate, tail float64) float64 {
	n := len(sample)
	if n == 0 {
		return math.Inf(1)
	}
	if rate >= tail || rate <= 0 {
		return Threshold(sample, rate)
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	u := s[min(int((1-tail)*float64(n)), n-1)]
	var excess float64
	k := 0
	for _, v := range s {
		if v > u {
			excess += v - u
			k++
		}
	}
	if k == 0 {
		return Threshold(sample, rate)
	}
	return u + excess/float64(k)*math.Log(float64(k)/float64(n)/rate)
}

// Convergence measures how fast a baseline still meets new behaviour: the
// fraction of learned events whose full-length transition was new to the
// model, over consecutive blocks of Block events.
//
// Graduation rule: a baseline has converged once Blocks consecutive blocks
// each had a new-transition rate at or below Bound (so at least
// Blocks·Block events were learned). Fresh novelty (a block above Bound)
// restarts the count; callers may choose to return to learning then.
// The fields are exported so the pipeline can persist the state.
type Convergence struct {
	Block  uint64  // events per block
	Bound  float64 // highest new-transition rate of a converged block
	Blocks int     // consecutive converged blocks needed

	Events   uint64  // events observed
	InBlock  uint64  // events in the current block
	NewInBlk uint64  // new transitions in the current block
	Streak   int     // consecutive converged blocks so far
	LastRate float64 // rate of the last complete block (1 before the first)
}

// Default graduation rule: 3 consecutive blocks of 10 000 events with at most
// 1 new transition per 500 events.
const (
	DefaultConvergenceBlock  = 10000
	DefaultConvergenceBound  = 0.002
	DefaultConvergenceBlocks = 3
)

// NewConvergence returns a tracker with the default rule.
func NewConvergence() Convergence {
	return Convergence{Block: DefaultConvergenceBlock, Bound: DefaultConvergenceBound,
		Blocks: DefaultConvergenceBlocks, LastRate: 1}
}

// Observe records one learned event; novel is Model.Learn's result.
func (c *Convergence) Observe(novel bool) {
	c.Events++
	c.InBlock++
	if novel {
		c.NewInBlk++
	}
	if c.Block == 0 || c.InBlock < c.Block {
		return
	}
	c.LastRate = float64(c.NewInBlk) / float64(c.InBlock)
	if c.LastRate <= c.Bound {
		c.Streak++
	} else {
		c.Streak = 0
	}
	c.InBlock, c.NewInBlk = 0, 0
}

// Rate returns the new-transition rate of the last complete block.
func (c *Convergence) Rate() float64 { return c.LastRate }

// Converged reports whether the graduation rule holds.
func (c *Convergence) Converged() bool { return c.Blocks > 0 && c.Streak >= c.Blocks }

// Stats describes a model's maturity and size.
type Stats struct {
	Events        uint64 // events learned, net of subtracted deltas
	Transitions   int    // distinct full-length transitions (history → symbol)
	Contexts      int    // distinct full-length histories
	Symbols       int    // symbols in the vocabulary (without OOV)
	VocabOverflow uint64 // names refused because the vocabulary was full
	Bytes         int    // approximate memory held by the counts
}

// Stats returns the model's statistics in O(1): the counts are kept as the
// model changes, so the pipeline may call it for every alert.
func (m *Model) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := Stats{
		Events: m.events, Symbols: len(m.vocab.names), VocabOverflow: m.vocab.overflow,
		Transitions: m.topTrans + len(m.short), Contexts: m.topCtx,
	}
	// Maps cost about key+value plus ~1 control byte per entry at a
	// typical 7/8 load; the context tree's tables hold their slots, 16
	// bytes each, and the node slices their nodes.
	entries := (len(m.short) + len(m.pending)) * (int(unsafe.Sizeof(eventKey{})) + 9)
	st.Bytes = entries*8/7 + (len(m.trans.tab.slots)+len(m.child.slots))*16 + len(m.trans.direct)*9 +
		cap(m.nodes)*int(unsafe.Sizeof(node{})) + cap(m.slog)*8 + len(m.rootChild)*4 + len(m.vocab.names)*32
	return st
}

// Events returns the number of events learned, net of subtracted deltas.
func (m *Model) Events() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.events
}
