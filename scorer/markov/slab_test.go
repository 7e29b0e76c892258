package markov

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestSlabMatchesMap drives a slab with keys on both sides of its direct
// range (which grows on demand) and a map side by side.
func TestSlabMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newSlab[uint64](512)
	ref := map[uint64]uint64{}
	key := func() uint64 {
		switch rng.IntN(3) {
		case 0:
			return uint64(rng.IntN(40)) // small symbols
		case 1:
			return uint64(rng.IntN(600)) // up to and past directMax
		}
		return rng.Uint64N(1 << 40)
	}
	for step := range 20000 {
		k := key()
		switch rng.IntN(4) {
		case 0:
			s.remove(k)
			delete(ref, k)
		case 1:
			v := s.get(k)
			want, ok := ref[k]
			if (v != nil) != ok || (ok && *v != want) {
				t.Fatalf("step %d: get(%d) = %v, want %d, %v", step, k, v, want, ok)
			}
		default:
			v, added := s.getOrAdd(k)
			if _, ok := ref[k]; added == ok {
				t.Fatalf("step %d: getOrAdd(%d) added = %v, key present before: %v", step, k, added, ok)
			}
			*v += uint64(step)
			ref[k] += uint64(step)
		}
	}
	if s.len() != len(ref) {
		t.Fatalf("len = %d, want %d", s.len(), len(ref))
	}
	got := map[uint64]uint64{}
	s.all(func(k uint64, v *uint64) { got[k] = *v })
	if !maps.Equal(got, ref) {
		t.Fatalf("all() visits %d keys, want %d (or other values)", len(got), len(ref))
	}
	if len(s.direct) > 512 {
		t.Errorf("direct range grew to %d, past its maximum 512", len(s.direct))
	}
}
