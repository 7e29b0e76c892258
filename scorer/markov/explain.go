package markov

import (
	"cmp"
	"slices"
)

// Transition is one explained step: the history, the symbol that followed,
// the model's probability for it, and how often the model saw the history.
type Transition struct {
	History     []Symbol // oldest first, at most Order-1 symbols
	Symbol      Symbol
	Probability float64
	Surprise    float64 // -log2 Probability, bits
	HistorySeen uint64  // times the model saw the whole history
	Offset      int     // position of the event in the window, 0 = oldest
}

// Explain recomputes every event of the window against the model as it is
// now and returns the k least likely transitions, least likely first (ties
// by position). It allocates; call it only when alerting.
func (m *Model) Explain(w *Window, k int) []Transition {
	syms, lead := w.symbols()
	var h History
	for _, s := range syms[:lead] {
		h.Push(s)
	}
	out := make([]Transition, 0, len(syms)-lead)
	m.mu.RLock()
	for i, s := range syms[lead:] {
		l := m.histLen(&h)
		p, _, seen, _ := m.prob(h.packed, l, s, false)
		hist := h.Symbols(nil)
		out = append(out, Transition{
			History: hist[len(hist)-l:], Symbol: s, Probability: p,
			Surprise: -log2(p), HistorySeen: seen, Offset: i,
		})
		h.Push(s)
	}
	m.mu.RUnlock()
	slices.SortStableFunc(out, func(a, b Transition) int { return cmp.Compare(a.Probability, b.Probability) })
	if k >= 0 && len(out) > k {
		out = out[:k]
	}
	return out
}

// WindowSymbols returns the window's events' symbols, oldest first.
func (w *Window) WindowSymbols() []Symbol {
	syms, lead := w.symbols()
	return syms[lead:]
}
