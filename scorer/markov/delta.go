package markov

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Encoding magics and version. Bump the version on any incompatible change.
const (
	deltaMagic    = "FSMD"
	modelMagic    = "FSMM"
	formatVersion = 1
)

// Delta is a signed multiset of learned events (history → symbol), carrying
// its own symbol names so that it can be applied to any model of the same
// order, on this node or another. Deltas add and subtract exactly:
// m.Apply(d, +1) then m.Apply(d, -1) leaves m's encoding unchanged.
type Delta struct {
	order   int
	names   []string // names of local symbols 1..len(names); 0 is OOV
	entries []entry  // sorted by key; keys use local symbols
}

type entry struct {
	key   uint64
	count int64
}

// Len returns the number of distinct events in the delta.
func (d Delta) Len() int { return len(d.entries) }

// Events returns the net number of events in the delta.
func (d Delta) Events() int64 {
	var n int64
	for _, e := range d.entries {
		n += e.count
	}
	return n
}

// TakeDelta returns the events learned since the previous TakeDelta and
// clears them. The result is deterministic: learning the same events gives
// the same Delta bytes, whatever the learning order.
func (m *Model) TakeDelta() Delta {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.exportLocked(func(yield func(uint64, int64)) {
		for k, c := range m.pending {
			if c != 0 {
				yield(k, c)
			}
		}
	})
	clear(m.pending)
	return d
}

// exportLocked renames model symbols to local ones (numbered in order of
// their sorted names) and sorts the entries.
func (m *Model) exportLocked(each func(yield func(uint64, int64))) Delta {
	return export(m.cfg.Order, m.vocab.name, each)
}

// export builds the canonical Delta of the entries each yields (keys over
// symbols that name resolves): only the names the entries use, numbered in
// sorted order, and the entries sorted by key. Equal multisets of events
// give equal Deltas, whatever their symbols' numbering.
func export(order int, name func(Symbol) string, each func(yield func(uint64, int64))) Delta {
	used := make(map[Symbol]bool)
	each(func(k uint64, _ int64) {
		forSymbols(k, func(s Symbol) { used[s] = true })
	})
	delete(used, OOV)
	syms := make([]Symbol, 0, len(used))
	for s := range used {
		syms = append(syms, s)
	}
	slices.SortFunc(syms, func(a, b Symbol) int { return cmp.Compare(name(a), name(b)) })
	local := make(map[Symbol]Symbol, len(syms))
	names := make([]string, len(syms))
	for i, s := range syms {
		local[s] = Symbol(i + 1)
		names[i] = name(s)
	}
	var es []entry
	each(func(k uint64, c int64) {
		es = append(es, entry{key: mapKey(k, func(s Symbol) Symbol { return local[s] }), count: c})
	})
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.key, b.key) })
	return Delta{order: order, names: names, entries: es}
}

// MergeDeltas adds encoded deltas (MarshalBinary output) of one order into
// one encoded delta: the same bytes as the Delta a model would export after
// learning all their events, so compaction of a delta log is deterministic.
// Events whose counts cancel are dropped. It fails on an undecodable blob,
// on mixed orders, and when given nothing.
func MergeDeltas(blobs ...[]byte) ([]byte, error) {
	if len(blobs) == 0 {
		return nil, errors.New("merge deltas: no deltas")
	}
	ids := map[string]Symbol{}
	var names []string
	sum := map[uint64]int64{}
	order := 0
	for i, b := range blobs {
		var d Delta
		if err := d.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("merge deltas: delta %d: %w", i, err)
		}
		if i == 0 {
			order = d.order
		} else if d.order != order {
			return nil, fmt.Errorf("merge deltas: delta %d: order %d, want %d", i, d.order, order)
		}
		local := make([]Symbol, len(d.names)+1)
		for j, n := range d.names {
			s, ok := ids[n]
			if !ok {
				if len(names)+1 >= MaxVocabSize {
					return nil, fmt.Errorf("merge deltas: more than %d names", MaxVocabSize-1)
				}
				names = append(names, n)
				s = Symbol(len(names))
				ids[n] = s
			}
			local[j+1] = s
		}
		for _, e := range d.entries {
			sum[mapKey(e.key, func(s Symbol) Symbol { return local[s] })] += e.count
		}
	}
	name := func(s Symbol) string {
		if s == OOV || int(s) > len(names) {
			return oovName
		}
		return names[s-1]
	}
	d := export(order, name, func(yield func(uint64, int64)) {
		for k, c := range sum {
			if c != 0 {
				yield(k, c)
			}
		}
	})
	return d.MarshalBinary()
}

// forSymbols calls fn for each symbol of a transition key.
func forSymbols(k uint64, fn func(Symbol)) {
	l := int(k >> 60)
	for i := 0; i <= l; i++ {
		fn(Symbol(k >> (uint(i) * symbolBits) & symbolMask))
	}
}

// mapKey renames every symbol of a transition key.
func mapKey(k uint64, fn func(Symbol) Symbol) uint64 {
	l := int(k >> 60)
	out := uint64(l) << 60
	for i := 0; i <= l; i++ {
		sh := uint(i) * symbolBits
		out |= uint64(fn(Symbol(k>>sh&symbolMask))) << sh
	}
	return out
}

// ErrUnderflow is returned (wrapped) by Apply when subtracting a delta would
// make a count negative, that is, when the delta was not added before. The
// counts concerned are clamped at zero.
var ErrUnderflow = errors.New("count underflow")

// Apply adds (sign > 0) or subtracts (sign < 0) the delta's events. Names
// unknown to the model are interned when adding (OOV when the vocabulary is
// full, as for Learn). Apply does not touch the pending delta.
func (m *Model) Apply(d Delta, sign int) error {
	if sign == 0 {
		return nil
	}
	if d.order != m.cfg.Order {
		return fmt.Errorf("apply delta: order %d, model order %d", d.order, m.cfg.Order)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(d.names, d.entries, sign)
}

func (m *Model) applyLocked(names []string, es []entry, sign int) error {
	local := make([]Symbol, len(names)+1)
	for i, n := range names {
		if sign > 0 {
			local[i+1] = m.vocab.intern(n)
		} else {
			local[i+1] = m.vocab.lookup(n)
		}
	}
	under := 0
	for _, e := range es {
		l := int(e.key >> 60)
		if l > m.cfg.Order-1 {
			return fmt.Errorf("apply delta: history length %d exceeds order %d", l, m.cfg.Order)
		}
		k := mapKey(e.key, func(s Symbol) Symbol {
			if int(s) >= len(local) {
				return OOV
			}
			return local[s]
		})
		n := e.count
		if sign < 0 {
			n = -n
		}
		if ok, _ := m.add(k>>symbolBits&histMask, l, Symbol(k&symbolMask), n); !ok {
			under++
		}
	}
	if under > 0 {
		return fmt.Errorf("apply delta: %d events: %w", under, ErrUnderflow)
	}
	return nil
}

// MarshalBinary encodes the delta: magic, version, order, names, then the
// entries as key increments and signed counts (varints).
func (d Delta) MarshalBinary() ([]byte, error) {
	b := []byte(deltaMagic)
	b = append(b, formatVersion, byte(d.order))
	b = appendNames(b, d.names)
	b = binary.AppendUvarint(b, uint64(len(d.entries)))
	var prev uint64
	for _, e := range d.entries {
		b = binary.AppendUvarint(b, e.key-prev)
		b = binary.AppendVarint(b, e.count)
		prev = e.key
	}
	return b, nil
}

// UnmarshalBinary decodes a delta written by MarshalBinary.
func (d *Delta) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if err := r.header(deltaMagic); err != nil {
		return fmt.Errorf("decode delta: %w", err)
	}
	order := int(r.byte())
	names := r.names()
	n := r.count(2)
	es := make([]entry, 0, n)
	var prev uint64
	for i := 0; i < n && r.err == nil; i++ {
		key := prev + r.uvarint()
		if i > 0 && key <= prev {
			r.fail("keys not increasing")
		}
		es = append(es, entry{key: key, count: r.varint()})
		prev = key
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("decode delta: %w", err)
	}
	if err := checkEntries(order, len(names), es); err != nil {
		return fmt.Errorf("decode delta: %w", err)
	}
	*d = Delta{order: order, names: names, entries: es}
	return nil
}

func checkEntries(order, nnames int, es []entry) error {
	if order < 1 || order > MaxOrder {
		return fmt.Errorf("order %d out of range", order)
	}
	for _, e := range es {
		if l := int(e.key >> 60); l > order-1 || e.key>>(uint(l+1)*symbolBits) != uint64(l)<<60>>(uint(l+1)*symbolBits) {
			return errors.New("malformed key")
		}
		bad := false
		forSymbols(e.key, func(s Symbol) { bad = bad || int(s) > nnames })
		if bad {
			return errors.New("key names an unknown symbol")
		}
	}
	return nil
}

func appendNames(b []byte, names []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	return b
}

// reader decodes varint streams, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

func (r *reader) header(magic string) error {
	if len(r.b) < len(magic)+1 || string(r.b[:len(magic)]) != magic {
		return errors.New("bad magic")
	}
	if v := r.b[len(magic)]; v != formatVersion {
		return fmt.Errorf("unsupported version %d", v)
	}
	r.b = r.b[len(magic)+1:]
	return nil
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length and checks it against the bytes left, each item
// taking at least minBytes.
func (r *reader) count(minBytes int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/minBytes) {
		r.fail("length exceeds input")
		return 0
	}
	return int(n)
}

func (r *reader) names() []string {
	n := r.count(1)
	if n >= MaxVocabSize {
		r.fail("too many names")
		return nil
	}
	names := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for i := 0; i < n && r.err == nil; i++ {
		l := r.count(1)
		if r.err != nil {
			break
		}
		s := string(r.b[:l])
		r.b = r.b[l:]
		if seen[s] {
			r.fail("duplicate name")
		}
		seen[s] = true
		names = append(names, s)
	}
	return names
}

func (r *reader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}
