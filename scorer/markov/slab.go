package markov

import (
	"math"
	"math/bits"
)

// slab is a map from uint64 keys to values stored in a slice: one hash probe
// finds a value that is then read and written in place (a map of values
// needs a second probe to store it back), and the map itself holds only
// 4-byte indexes, so its groups stay small in cache. Freed slots are reused.
// Keys below directMax (the empty context, the unigram counts: touched by
// every event) skip hashing altogether; that array grows with the largest
// such key seen, since most models use a few dozen symbols of the hundreds
// allowed (4.6 KB per model at the full vocabulary, 10,000 models).
type slab[T any] struct {
	idx       map[uint64]int32
	vals      []T
	free      []int32
	direct    []T
	has       []bool
	ndirect   int
	directMax int
}

func newSlab[T any](direct int) slab[T] {
	return slab[T]{idx: make(map[uint64]int32), directMax: direct}
}

// get returns the value of k, or nil. The pointer is valid until the next
// add to this slab.
func (s *slab[T]) get(k uint64) *T {
	if k < uint64(s.directMax) {
		if k < uint64(len(s.has)) && s.has[k] {
			return &s.direct[k]
		}
		return nil
	}
	if i, ok := s.idx[k]; ok {
		return &s.vals[i]
	}
	return nil
}

// getOrAdd returns the value of k, adding a zero value if absent; added
// reports whether it did. The pointer is valid until the next add.
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
	if i, ok := s.idx[k]; ok {
		return &s.vals[i], false
	}
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = int32(len(s.vals))
		var zero T
		s.vals = append(s.vals, zero)
	}
	s.idx[k] = i
	return &s.vals[i], true
}

// remove deletes k; its slot is zeroed and reused.
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
	i, ok := s.idx[k]
	if !ok {
		return
	}
	delete(s.idx, k)
	s.vals[i] = zero
	s.free = append(s.free, i)
}

// len returns the number of keys.
func (s *slab[T]) len() int { return len(s.idx) + s.ndirect }

// all calls fn for every key and value, in no particular order.
func (s *slab[T]) all(fn func(k uint64, v *T)) {
	for k, ok := range s.has {
		if ok {
			fn(uint64(k), &s.direct[k])
		}
	}
	for k, i := range s.idx {
		fn(k, &s.vals[i])
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
