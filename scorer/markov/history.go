package markov

// History is the per-sequence state the model needs: the last MaxOrder-1
// symbols, packed into one word. The zero value is the empty history (the
// start of a sequence). It is a small value with no pointers: keep one per
// sequence and call Push after scoring and learning each event.
type History struct {
	packed uint64 // most recent symbol in the low symbolBits bits
	n      uint8  // symbols held, at most MaxOrder-1
}

const (
	symbolMask = 1<<symbolBits - 1
	histBits   = (MaxOrder - 1) * symbolBits
	histMask   = 1<<histBits - 1
)

// Push appends s, forgetting the oldest symbol when full.
func (h *History) Push(s Symbol) {
	h.packed = (h.packed<<symbolBits | uint64(s)&symbolMask) & histMask
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
		dst = append(dst, Symbol(h.packed>>(uint(i)*symbolBits)&symbolMask))
	}
	return dst
}

// ctxKey is the key of the context made of the last k symbols of packed.
func ctxKey(packed uint64, k int) uint64 {
	return uint64(k)<<60 | packed&(1<<(uint(k)*symbolBits)-1)
}

// transKey is the key of the transition (last k symbols of packed) → s.
func transKey(packed uint64, k int, s Symbol) uint64 {
	return uint64(k)<<60 | (packed&(1<<(uint(k)*symbolBits)-1))<<symbolBits | uint64(s)&symbolMask
}
