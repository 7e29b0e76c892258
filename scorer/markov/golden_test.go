package markov

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"testing"
	"unsafe"
)

// TestScoreGolden pins every bit of what scoring returns: Score's fields
// (surprise, entropy, seen, order, match, span), the exact Probability and
// TopTransitions, on models that learned, forgot a bucket through a
// subtracted delta (node ids freed and reused) and kept learning while
// scoring. The checksums were taken from the code before the hot path was
// reworked for speed (map-based context tree); any change to the layout or
// the walk must leave every probability bit-identical.
func TestScoreGolden(t *testing.T) {
	order10 := DefaultConfig()
	order6 := DefaultConfig()
	order6.Order = 6
	ad := DefaultConfig()
	ad.Smoothing = AbsoluteDiscount
	o1 := DefaultConfig()
	o1.Order = 1
	o16 := DefaultConfig()
	o16.Order = MaxOrder
	v8 := DefaultConfig()
	v8.VocabSize = 8
	for _, tc := range []struct {
		name string
		cfg  Config
		want uint64
	}{
		{"order10", order10, 0xceda52c02c433d8b},
		{"order6", order6, 0xb75da93604b95ddd},
		{"absolute-discount", ad, 0xc2f7c362f220aa55},
		{"order1", o1, 0xc8f6bd1815be67},
		{"order16", o16, 0x1b2995910f6df93a},
		{"vocab8", v8, 0xc2ec453cf8eef6c2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m := scoreChecksum(t, tc.cfg)
			if got != tc.want {
				t.Errorf("checksum of the scores = %#x, want %#x", got, tc.want)
			}
			checkTree(t, m)
		})
	}
}

// scoreChecksum hashes everything the model answers over a fixed workload,
// and returns the model after it.
func scoreChecksum(t *testing.T, cfg Config) (uint64, *Model) {
	t.Helper()
	sum := fnv.New64a()
	var buf [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		sum.Write(buf[:])
	}
	putF := func(f float64) { put(math.Float64bits(f)) }

	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Two buckets, then the first is forgotten (rolling horizon).
	learnAll(m, corpus(60, 30, 400, 40))
	old := m.TakeDelta()
	learnAll(m, corpus(61, 30, 400, 45))
	m.TakeDelta()
	if err := m.Apply(old, -1); err != nil {
		t.Fatalf("Apply(-1) = %v", err)
	}
	// Score (and learn every third sequence) on unseen data, with some
	// names never seen: OOV and new symbols.
	for i, seq := range corpus(62, 12, 500, 50) {
		var h History
		for _, name := range seq {
			s := m.Lookup(name)
			if i%3 == 0 {
				s = m.Intern(name)
			}
			st := m.Score(&h, s)
			putF(st.Surprise)
			putF(st.Entropy)
			put(st.Seen)
			put(uint64(st.Order)<<32 | uint64(st.Match)<<16 | uint64(st.Span))
			putF(m.Probability(&h, s))
			if i%3 == 0 {
				m.Learn(&h, s)
			}
			h.Push(s)
		}
	}
	for _, tr := range m.TopTransitions(20) {
		putF(tr.Probability)
		put(tr.Count)
		put(tr.HistorySeen)
	}
	return sum.Sum64(), m
}

// checkTree checks what the scoring walk relies on: a live node's count and
// distinct are those of its transitions, its known only follower is its one
// transition, and every child index entry names a node of that parent and
// symbol.
func checkTree(t *testing.T, m *Model) {
	t.Helper()
	sums := make([]uint64, len(m.nodes))
	nfol := make([]int, len(m.nodes))
	m.trans.all(func(k uint64, c *uint64) {
		id := k >> symbolBits
		sums[id] += *c
		nfol[id]++
	})
	free := map[int32]bool{}
	for _, id := range m.free {
		free[id] = true
	}
	for id := range m.nodes {
		nd := &m.nodes[id]
		if free[int32(id)] {
			if *nd != (node{}) || sums[id] != 0 {
				t.Fatalf("free node %d = %+v, %d counted after it", id, *nd, sums[id])
			}
			continue
		}
		if nd.count != sums[id] || int(nd.distinct) != nfol[id] {
			t.Fatalf("node %d: count %d, distinct %d; its transitions sum to %d over %d symbols", id, nd.count, nd.distinct, sums[id], nfol[id])
		}
		if nd.only != 0 {
			c := m.trans.get(uint64(id)<<symbolBits | uint64(nd.only&^onlyKnown))
			if nd.only&onlyKnown == 0 || nd.distinct != 1 || c == nil || *c != nd.count {
				t.Fatalf("node %d: only %#x with %d followers, count of it %v", id, nd.only, nd.distinct, c)
			}
		}
	}
	for i := range m.child.slots {
		sl := &m.child.slots[i]
		if sl.key == 0 {
			continue
		}
		nd := &m.nodes[sl.val]
		if parent, sym := int32(sl.key>>symbolBits), Symbol(sl.key&symbolMask); nd.parent != parent || nd.sym != sym || free[sl.val] {
			t.Fatalf("child index: %d/%d → node %d of parent %d, symbol %d", parent, sym, sl.val, nd.parent, nd.sym)
		}
	}
}

// TestNodeSize: a node is what a score reads of a context; at 32 bytes it
// never straddles two cache lines.
func TestNodeSize(t *testing.T) {
	if s := unsafe.Sizeof(node{}); s != 32 {
		t.Errorf("unsafe.Sizeof(node{}) = %d, want 32", s)
	}
}
