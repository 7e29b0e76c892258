package markov

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Encoding magics and versions. Bump the version on any incompatible
// change. Version 1 packed each event into one uint64 (orders up to 6);
// version 2 writes each event as its symbols, prefix-compressed against the
// previous one (any order up to MaxOrder). Both decode; version 2 is
// written.
const (
	deltaMagic    = "FSMD"
	modelMagic    = "FSMM"
	formatVersion = 2
	formatV1      = 1
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
	key   eventKey
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
	d := m.exportLocked(func(yield func(eventKey, int64)) {
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
func (m *Model) exportLocked(each func(yield func(eventKey, int64))) Delta {
	return export(m.cfg.Order, m.vocab.name, each)
}

// export builds the canonical Delta of the entries each yields (keys over
// symbols that name resolves): only the names the entries use, numbered in
// sorted order, and the entries sorted by key. Equal multisets of events
// give equal Deltas, whatever their symbols' numbering.
func export(order int, name func(Symbol) string, each func(yield func(eventKey, int64))) Delta {
	used := make(map[Symbol]bool)
	each(func(k eventKey, _ int64) {
		for _, s := range k.syms[:k.n] {
			used[s] = true
		}
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
	each(func(k eventKey, c int64) {
		es = append(es, entry{key: mapKey(k, func(s Symbol) Symbol { return local[s] }), count: c})
	})
	slices.SortFunc(es, func(a, b entry) int { return cmpKey(&a.key, &b.key) })
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
	sum := map[eventKey]int64{}
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
	d := export(order, name, func(yield func(eventKey, int64)) {
		for k, c := range sum {
			if c != 0 {
				yield(k, c)
			}
		}
	})
	return d.MarshalBinary()
}

// ErrUnderflow is returned (wrapped) by Apply when subtracting a delta would
// make a count negative, that is, when the delta was not added before. The
// counts concerned are clamped at zero.
var ErrUnderflow = errors.New("count underflow")

// ErrOrderMismatch is returned (wrapped) by Apply for a delta of another
// order than the model's, for example one stored before the default order
// changed: such counts cannot be converted and must be learned again.
var ErrOrderMismatch = errors.New("order mismatch")

// Apply adds (sign > 0) or subtracts (sign < 0) the delta's events. Names
// unknown to the model are interned when adding (OOV when the vocabulary is
// full, as for Learn). Apply does not touch the pending delta.
func (m *Model) Apply(d Delta, sign int) error {
	if sign == 0 {
		return nil
	}
	if d.order != m.cfg.Order {
		// Counts of shorter n-grams cannot be lengthened: a baseline
		// learned at another order must be learned again.
		return fmt.Errorf("apply delta: order %d, model order %d: %w", d.order, m.cfg.Order, ErrOrderMismatch)
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
		if int(e.key.n) > m.cfg.Order {
			return fmt.Errorf("apply delta: history length %d exceeds order %d", e.key.n-1, m.cfg.Order)
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
		hist, l, s := k.split()
		if ok, _ := m.add(&hist, l, s, n); !ok {
			under++
		}
	}
	if under > 0 {
		return fmt.Errorf("apply delta: %d events: %w", under, ErrUnderflow)
	}
	return nil
}

// MarshalBinary encodes the delta: magic, version, order, names, then the
// entries (see appendEntries) with signed counts.
func (d Delta) MarshalBinary() ([]byte, error) {
	b := []byte(deltaMagic)
	b = append(b, formatVersion, byte(d.order))
	b = appendNames(b, d.names)
	return appendEntries(b, d.entries, true), nil
}

// UnmarshalBinary decodes a delta written by MarshalBinary (this version or
// version 1).
func (d *Delta) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	v, err := r.header(deltaMagic)
	if err != nil {
		return fmt.Errorf("decode delta: %w", err)
	}
	order := int(r.byte())
	if r.err == nil && (order < 1 || order > MaxOrder) {
		return fmt.Errorf("decode delta: order %d out of range", order)
	}
	names := r.names()
	es := r.entries(v, order, len(names), true)
	if err := r.done(); err != nil {
		return fmt.Errorf("decode delta: %w", err)
	}
	*d = Delta{order: order, names: names, entries: es}
	return nil
}

// appendEntries writes the number of entries, then each as its length n,
// the number p of leading symbols it shares with the previous entry, its
// n-p other symbols and its count (varints; entries in cmpKey order, so
// neighbours share long prefixes).
func appendEntries(b []byte, es []entry, signed bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(es)))
	var prev eventKey
	for i := range es {
		k := &es[i].key
		p := 0
		for p < int(k.n) && p < int(prev.n) && k.syms[p] == prev.syms[p] {
			p++
		}
		b = binary.AppendUvarint(b, uint64(k.n))
		b = binary.AppendUvarint(b, uint64(p))
		for _, s := range k.syms[p:k.n] {
			b = binary.AppendUvarint(b, uint64(s))
		}
		if signed {
			b = binary.AppendVarint(b, es[i].count)
		} else {
			b = binary.AppendUvarint(b, uint64(es[i].count))
		}
		prev = *k
	}
	return b
}

// entries reads the entries of an encoding of version v, checking that
// every key fits the order, names a known symbol and follows the previous
// one; unsigned counts must be positive.
func (r *reader) entries(v byte, order, nnames int, signed bool) []entry {
	if v == formatV1 {
		return r.entriesV1(order, nnames, signed)
	}
	n := r.count(3)
	es := make([]entry, 0, n)
	var prev eventKey
	for i := 0; i < n && r.err == nil; i++ {
		var k eventKey
		kn, p := r.uvarint(), r.uvarint()
		if kn < 1 || kn > uint64(order) || p > kn || p > uint64(prev.n) {
			r.fail("malformed key")
			break
		}
		k.n = uint8(kn)
		copy(k.syms[:p], prev.syms[:p])
		for j := int(p); j < int(kn); j++ {
			s := r.uvarint()
			if s > uint64(nnames) {
				r.fail("key names an unknown symbol")
			}
			k.syms[j] = Symbol(s)
		}
		if i > 0 && cmpKey(&prev, &k) >= 0 {
			r.fail("keys not increasing")
		}
		es = append(es, entry{key: k, count: r.countValue(signed)})
		prev = k
	}
	return es
}

// countValue reads one count: a varint, or a positive uvarint.
func (r *reader) countValue(signed bool) int64 {
	if signed {
		return r.varint()
	}
	c := r.uvarint()
	if r.err == nil && (c == 0 || c > math.MaxInt64) {
		r.fail("bad count")
	}
	return int64(c)
}

// entriesV1 reads version-1 entries: each key packed into a uint64 (the
// history length in the top 4 bits, then up to 5 history symbols, newest
// lowest, then the symbol in the low 10 bits), written as increments.
func (r *reader) entriesV1(order, nnames int, signed bool) []entry {
	n := r.count(2)
	es := make([]entry, 0, n)
	var prev uint64
	for i := 0; i < n && r.err == nil; i++ {
		key := prev + r.uvarint()
		if i > 0 && key <= prev {
			r.fail("keys not increasing")
		}
		l := int(key >> 60)
		if l > order-1 || l > 5 || key>>(uint(l+1)*symbolBits) != uint64(l)<<60>>(uint(l+1)*symbolBits) {
			r.fail("malformed key")
			break
		}
		k := eventKey{n: uint8(l + 1)}
		for j := 0; j <= l; j++ { // j-th symbol from the newest (the event's symbol)
			s := Symbol(key >> (uint(j) * symbolBits) & symbolMask)
			if int(s) > nnames {
				r.fail("key names an unknown symbol")
			}
			k.syms[l-j] = s
		}
		es = append(es, entry{key: k, count: r.countValue(signed)})
		prev = key
	}
	slices.SortFunc(es, func(a, b entry) int { return cmpKey(&a.key, &b.key) })
	return es
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

// header reads the magic and returns the version (formatVersion or
// formatV1).
func (r *reader) header(magic string) (byte, error) {
	if len(r.b) < len(magic)+1 || string(r.b[:len(magic)]) != magic {
		return 0, errors.New("bad magic")
	}
	v := r.b[len(magic)]
	if v != formatVersion && v != formatV1 {
		return 0, fmt.Errorf("unsupported version %d", v)
	}
	r.b = r.b[len(magic)+1:]
	return v, nil
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
