package markov

// History is the per-sequence state the model needs: the last MaxOrder-1
// symbols, newest first. The zero value is the empty history (the start of
// a sequence). It is a small value with no pointers (32 bytes): keep one
// per sequence and call Push after scoring and learning each event.
type History struct {
	syms [MaxOrder - 1]Symbol // syms[0] is the most recent symbol
	n    uint8                // symbols held, at most MaxOrder-1
}

const symbolMask = 1<<symbolBits - 1

// Push appends s, forgetting the oldest symbol when full.
func (h *History) Push(s Symbol) {
	copy(h.syms[1:], h.syms[:MaxOrder-2])
	h.syms[0] = s & symbolMask
	if h.n < MaxOrder-1 {
		h.n++
	}
}

// Len returns the number of symbols held.
func (h *History) Len() int { return int(h.n) }

// Reset empties the history (a new sequence).
func (h *History) Reset() { *h = History{} }

// Symbols appends the held symbols, oldest first, to dst.
func (h *History) Symbols(dst []Symbol) []Symbol {
	for i := int(h.n) - 1; i >= 0; i-- {
		dst = append(dst, h.syms[i])
	}
	return dst
}

// eventKey names one learned event exactly: its history (oldest first) and
// then its symbol, n symbols in all. Deltas, the encoding and the counts of
// sequence starts use it; the hot path uses context-tree node ids instead.
type eventKey struct {
	n    uint8
	syms [MaxOrder]Symbol
}

// makeKey is the key of the event (last l symbols of hist, newest first) → s.
func makeKey(hist *[MaxOrder - 1]Symbol, l int, s Symbol) eventKey {
	k := eventKey{n: uint8(l + 1)}
	for i := 0; i < l; i++ {
		k.syms[i] = hist[l-1-i]
	}
	k.syms[l] = s
	return k
}

// split returns the key's history (newest first), its length and symbol.
func (k *eventKey) split() (hist [MaxOrder - 1]Symbol, l int, s Symbol) {
	l = int(k.n) - 1
	for i := 0; i < l; i++ {
		hist[i] = k.syms[l-1-i]
	}
	return hist, l, k.syms[l]
}

// cmpKey orders keys by length, then symbols: the canonical order of
// encoded entries.
func cmpKey(a, b *eventKey) int {
	if a.n != b.n {
		return int(a.n) - int(b.n)
	}
	for i := 0; i < int(a.n); i++ {
		if a.syms[i] != b.syms[i] {
			return int(a.syms[i]) - int(b.syms[i])
		}
	}
	return 0
}

// mapKey renames every symbol of k.
func mapKey(k eventKey, fn func(Symbol) Symbol) eventKey {
	for i := 0; i < int(k.n); i++ {
		k.syms[i] = fn(k.syms[i])
	}
	return k
}
