package markov

import (
	"math"
	"math/bits"
)

// slab is a map from uint64 keys to values: keys below directMax (the
// empty context, the unigram counts: touched by every event) live in an
// array and skip hashing altogether; the others in an open-addressing table
// that stores each value beside its key, so that one probe, usually one
// cache line, finds a value that is then read and written in place. The
// direct array grows with the largest such key seen, since most models use
// a few dozen symbols of the hundreds allowed (4.6 KB per model at the full
// vocabulary, 10,000 models).
type slab[T any] struct {
	tab       table[T]
	direct    []T
	has       []bool
	ndirect   int
	directMax int
}

func newSlab[T any](direct int) slab[T] {
	return slab[T]{directMax: direct}
}

// get returns the value of k, or nil. The pointer is valid until the next
// add or remove in this slab.
func (s *slab[T]) get(k uint64) *T {
	if k < uint64(s.directMax) {
		if k < uint64(len(s.has)) && s.has[k] {
			return &s.direct[k]
		}
		return nil
	}
	return s.tab.get(k)
}

// getOrAdd returns the value of k, adding a zero value if absent; added
// reports whether it did. The pointer is valid until the next add or
// remove.
func (s *slab[T]) getOrAdd(k uint64) (v *T, added bool) {
	if k < uint64(s.directMax) {
		if k >= uint64(len(s.direct)) {
			n := min(s.directMax, max(2*len(s.direct), int(k)+1, 8))
			s.direct = append(s.direct, make([]T, n-len(s.direct))...)
			s.has = append(s.has, make([]bool, n-len(s.has))...)
		}
		if !s.has[k] {
			s.has[k] = true
			s.ndirect++
			added = true
		}
		return &s.direct[k], added
	}
	return s.tab.getOrAdd(k)
}

// remove deletes k.
func (s *slab[T]) remove(k uint64) {
	var zero T
	if k < uint64(s.directMax) {
		if k < uint64(len(s.has)) && s.has[k] {
			s.has[k] = false
			s.direct[k] = zero
			s.ndirect--
		}
		return
	}
	s.tab.remove(k)
}

// len returns the number of keys.
func (s *slab[T]) len() int { return s.tab.n + s.ndirect }

// all calls fn for every key and value, in no particular order.
func (s *slab[T]) all(fn func(k uint64, v *T)) {
	for k, ok := range s.has {
		if ok {
			fn(uint64(k), &s.direct[k])
		}
	}
	s.tab.all(fn)
}

// table is an open-addressing hash table from nonzero uint64 keys to
// values, with linear probing and backward-shift deletion (no tombstones,
// so lookups stay short under the rolling horizon's adds and removes). The
// context tree's keys are node ids and symbols, not attacker-chosen bytes,
// so a fixed multiplicative hash is enough. It keeps its load at most 3/4:
// a slot is 8 bytes of key plus the value, 16 bytes for uint64 or int32
// values, so 21 to 43 bytes per entry (a Go map[uint64]int32 is about 18 to
// 37, and the slab before this table added 8 bytes of value and a free
// list on top); in exchange a lookup reads one slot run instead of a map's
// directory, table, control word and slot, then the value slice.
type table[T any] struct {
	slots []tslot[T] // len is 0 or a power of two
	n     int        // keys held
	shift uint       // 64 - log2(len(slots))
}

type tslot[T any] struct {
	key uint64 // 0: empty
	val T
}

// home is k's first slot: Fibonacci hashing, the top bits of k·2^64/φ.
func (t *table[T]) home(k uint64) uint64 { return (k * fibMul) >> t.shift }

// fibMul is 2^64/φ, odd.
const fibMul = 0x9E3779B97F4A7C15

// get returns the value of k, or nil. The pointer is valid until the next
// add or remove.
func (t *table[T]) get(k uint64) *T {
	if t.n == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.key == k {
			return &sl.val
		}
		if sl.key == 0 {
			return nil
		}
	}
}

// getOrAdd returns the value of k, adding a zero value if absent; added
// reports whether it did. The pointer is valid until the next add or
// remove.
func (t *table[T]) getOrAdd(k uint64) (v *T, added bool) {
	if 4*(t.n+1) > 3*len(t.slots) {
		if v := t.get(k); v != nil {
			return v, false
		}
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.key == k {
			return &sl.val, false
		}
		if sl.key == 0 {
			sl.key = k
			t.n++
			return &sl.val, true
		}
	}
}

// grow doubles the slots (at least 16) and reinserts every key.
func (t *table[T]) grow() {
	old := t.slots
	size := max(16, 2*len(old))
	t.slots = make([]tslot[T], size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, sl := range old {
		if sl.key == 0 {
			continue
		}
		i := t.home(sl.key)
		for t.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = sl
	}
}

// remove deletes k, moving back the keys of its probe run that may fill the
// hole so that every key stays reachable from its home slot.
func (t *table[T]) remove(k uint64) {
	if t.n == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := t.home(k)
	for t.slots[i].key != k {
		if t.slots[i].key == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j].key != 0; j = (j + 1) & mask {
		// The key at j may move to the hole at i when i lies on its
		// probe path, from its home to j.
		if (j-t.home(t.slots[j].key))&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = tslot[T]{}
	t.n--
}

// all calls fn for every key and value, in no particular order; fn must
// not add or remove.
func (t *table[T]) all(fn func(k uint64, v *T)) {
	for i := range t.slots {
		if sl := &t.slots[i]; sl.key != 0 {
			fn(sl.key, &sl.val)
		}
	}
}

// log2Table holds log2 of the small integers, so that updating a context's
// entropy terms costs table reads rather than logarithms. It is computed
// once and only read.
var log2Table = func() (t [1 << 12]float64) {
	for i := 1; i < len(t); i++ {
		t[i] = math.Log2(float64(i))
	}
	return t
}()

// log2u returns log2(c) for c ≥ 1, as exact as math.Log2 (within 1e-13
// relative) and several times faster: beyond the table, c = (hi + x)·2^e
// with hi the top 12 bits, and log2(1 + x/hi) comes from three terms of its
// series (x/hi < 2^-11).
func log2u(c uint64) float64 {
	if c < uint64(len(log2Table)) {
		return log2Table[c]
	}
	e := bits.Len64(c) - 12
	hi := c >> uint(e)
	x := float64(c-hi<<uint(e)) / float64(hi<<uint(e))
	return float64(e) + log2Table[hi] + x*(1-x*(0.5-x*(1.0/3)))*math.Log2E
}

// xlog returns c·log2(c) (0 for c ≤ 1).
func xlog(c uint64) float64 {
	if c <= 1 {
		return 0
	}
	return float64(c) * log2u(c)
}
