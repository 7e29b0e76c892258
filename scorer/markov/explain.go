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
	Offset      int     // position of the event in the window, 0 = oldest (Explain only)
	Count       uint64  // times the model learned this transition
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
		if int(s) >= m.cfg.VocabSize {
			s = OOV
		}
		r := m.prob(&h.syms, l, s, false, 0)
		hist := h.Symbols(nil)
		out = append(out, Transition{
			History: hist[len(hist)-l:], Symbol: s, Probability: r.p,
			Surprise: -log2(r.p), HistorySeen: r.seen, Offset: i, Count: r.count,
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

// TopTransitions returns the k most frequent full-length transitions (a
// history of Order-1 symbols, then the symbol), most frequent first, ties
// ordered by the names of history then symbol, with their counts and the
// model's smoothed probabilities. It walks the counts (O(transitions)) and
// allocates: call it for reports, not per event.
func (m *Model) TopTransitions(k int) []Transition {
	if k <= 0 {
		return nil
	}
	type kc struct {
		key   eventKey
		count uint64
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	top := m.cfg.Order - 1
	var all []kc
	m.trans.all(func(tk uint64, c *uint64) {
		if id := int32(tk >> symbolBits); int(m.nodes[id].depth) == top {
			all = append(all, kc{m.keyOf(id, Symbol(tk&symbolMask)), *c})
		}
	})
	names := func(key eventKey) []string {
		out := make([]string, key.n)
		for i := range out {
			out[i] = m.vocab.name(key.syms[i])
		}
		return out
	}
	// Order by count, then resolve names only for the transitions tied
	// with the last one kept.
	slices.SortFunc(all, func(a, b kc) int { return cmp.Compare(b.count, a.count) })
	if len(all) > k {
		cut := all[k-1].count
		n := k
		for n < len(all) && all[n].count == cut {
			n++
		}
		all = all[:n]
	}
	type named struct {
		kc
		names []string
	}
	cands := make([]named, len(all))
	for i, e := range all {
		cands[i] = named{e, names(e.key)}
	}
	slices.SortFunc(cands, func(a, b named) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return slices.Compare(a.names, b.names)
	})
	for i := range all[:min(k, len(all))] {
		all[i] = cands[i].kc
	}
	all = all[:min(k, len(all))]
	out := make([]Transition, len(all))
	for i, e := range all {
		hist, l, s := e.key.split()
		r := m.prob(&hist, l, s, false, 0)
		out[i] = Transition{History: append([]Symbol(nil), e.key.syms[:l]...), Symbol: s, Probability: r.p,
			Surprise: -log2(r.p), HistorySeen: r.seen, Count: e.count}
	}
	return out
}

// keyOf spells the event (context node id) → s as an eventKey: walking up
// from a node gives its symbols oldest first.
func (m *Model) keyOf(id int32, s Symbol) eventKey {
	d := int(m.nodes[id].depth)
	k := eventKey{n: uint8(d + 1)}
	for i := 0; id != 0; i++ {
		k.syms[i] = m.nodes[id].sym
		id = m.nodes[id].parent
	}
	k.syms[d] = s
	return k
}
