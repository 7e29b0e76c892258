package markov

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
)

func marshalDelta(t *testing.T, d Delta) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatalf("Delta.MarshalBinary() = %v", err)
	}
	return b
}

// learnAll teaches m every sequence of data.
func learnAll(m *Model, data [][]string) {
	for _, seq := range data {
		var h History
		for _, n := range seq {
			s := m.Intern(n)
			m.Learn(&h, s)
			h.Push(s)
		}
	}
}

func TestMergeDeltas(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			// Batches with overlapping and new names, learned in turn by one
			// model (one delta per batch) and all at once by another.
			batches := [][][]string{corpus(30, 6, 60, 12), corpus(31, 4, 80, 20), corpus(32, 5, 50, 8)}
			src, _ := New(tc.cfg)
			var blobs [][]byte
			for _, b := range batches {
				learnAll(src, b)
				blobs = append(blobs, marshalDelta(t, src.TakeDelta()))
			}
			union, _ := New(tc.cfg)
			for _, b := range batches {
				learnAll(union, b)
			}
			want := marshalDelta(t, union.TakeDelta())
			merged, err := MergeDeltas(blobs...)
			if err != nil {
				t.Fatalf("MergeDeltas() = %v", err)
			}
			if !bytes.Equal(merged, want) {
				t.Errorf("MergeDeltas() differs from the delta of the union (%d vs %d bytes)", len(merged), len(want))
			}
			// Apply(merged) and Apply(each) give the same model bytes.
			one, _ := New(tc.cfg)
			var d Delta
			if err := d.UnmarshalBinary(merged); err != nil {
				t.Fatalf("UnmarshalBinary(merged) = %v", err)
			}
			if err := one.Apply(d, +1); err != nil {
				t.Fatalf("Apply(merged) = %v", err)
			}
			each, _ := New(tc.cfg)
			for i, b := range blobs {
				var d Delta
				if err := d.UnmarshalBinary(b); err != nil {
					t.Fatalf("UnmarshalBinary(delta %d) = %v", i, err)
				}
				if err := each.Apply(d, +1); err != nil {
					t.Fatalf("Apply(delta %d) = %v", i, err)
				}
			}
			if !bytes.Equal(encode(t, one), encode(t, each)) {
				t.Errorf("Apply(MergeDeltas(ds)) and Apply of each delta give different model bytes")
			}
			if !bytes.Equal(encode(t, one), encode(t, src)) {
				t.Errorf("Apply(MergeDeltas(ds)) differs from the model that learned the batches")
			}
			// Merging is order-independent and idempotent over one delta.
			slices.Reverse(blobs)
			if again, _ := MergeDeltas(blobs...); !bytes.Equal(again, merged) {
				t.Errorf("MergeDeltas(reversed) differs from MergeDeltas()")
			}
			if single, _ := MergeDeltas(blobs[0]); !bytes.Equal(single, blobs[0]) {
				t.Errorf("MergeDeltas(d) = %x, want d's bytes %x", single, blobs[0])
			}
		})
	}
}

func TestMergeDeltasCancels(t *testing.T) {
	src, _ := New(DefaultConfig())
	learnAll(src, corpus(33, 3, 40, 6))
	d := src.TakeDelta()
	neg := Delta{order: d.order, names: d.names, entries: slices.Clone(d.entries)}
	for i := range neg.entries {
		neg.entries[i].count = -neg.entries[i].count
	}
	merged, err := MergeDeltas(marshalDelta(t, d), marshalDelta(t, neg))
	if err != nil {
		t.Fatalf("MergeDeltas(d, -d) = %v", err)
	}
	empty, _ := New(DefaultConfig())
	if want := marshalDelta(t, empty.TakeDelta()); !bytes.Equal(merged, want) {
		t.Errorf("MergeDeltas(d, -d) = %x, want the empty delta %x", merged, want)
	}
}

func TestMergeDeltasErrors(t *testing.T) {
	a, _ := New(DefaultConfig())
	learnAll(a, corpus(34, 2, 20, 5))
	cfg := DefaultConfig()
	cfg.Order = 2
	b, _ := New(cfg)
	learnAll(b, corpus(34, 2, 20, 5))
	da, db := marshalDelta(t, a.TakeDelta()), marshalDelta(t, b.TakeDelta())
	tests := []struct {
		name  string
		blobs [][]byte
		want  string
	}{
		{"none", nil, "no deltas"},
		{"mixed orders", [][]byte{da, db}, "order 2, want 10"},
		{"garbage", [][]byte{da, []byte("FSMDxx")}, "delta 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MergeDeltas(tc.blobs...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("MergeDeltas() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestTopTransitions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Order = 2
	m, _ := New(cfg)
	// a→b three times, b→a twice, b→c twice, c→a once.
	learnAll(m, [][]string{{"a", "b", "a", "b", "c", "a", "b", "a"}})
	got := m.TopTransitions(3)
	type tr struct {
		hist, sym string
		count     uint64
	}
	want := []tr{{"a", "b", 3}, {"b", "a", 2}, {"b", "c", 1}}
	if len(got) != len(want) {
		t.Fatalf("TopTransitions(3) returned %d, want %d", len(got), len(want))
	}
	for i, g := range got {
		h := m.Name(g.History[0])
		if h != want[i].hist || m.Name(g.Symbol) != want[i].sym || g.Count != want[i].count {
			t.Errorf("TopTransitions(3)[%d] = %s→%s ×%d, want %s→%s ×%d", i, h, m.Name(g.Symbol), g.Count,
				want[i].hist, want[i].sym, want[i].count)
		}
		var hist History
		hist.Push(g.History[0])
		if p := m.Probability(&hist, g.Symbol); math.Abs(p-g.Probability) > 1e-12 {
			t.Errorf("TopTransitions(3)[%d].Probability = %v, want Probability() = %v", i, g.Probability, p)
		}
	}
	if all := m.TopTransitions(100); len(all) != 4 {
		t.Errorf("TopTransitions(100) returned %d, want the 4 distinct transitions", len(all))
	}
	if none := m.TopTransitions(0); len(none) != 0 {
		t.Errorf("TopTransitions(0) = %v, want none", none)
	}
}

// TestStatsCounters checks the O(1) counters against a walk of the counts
// through learning, adding and subtracting deltas.
func TestStatsCounters(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			m := trained(t, tc.cfg, corpus(35, 8, 60, 15))
			check := func(when string) {
				t.Helper()
				top := m.cfg.Order - 1
				var trans, ctxs int
				m.trans.all(func(k uint64, _ *uint64) {
					if int(m.nodes[k>>symbolBits].depth) == top {
						trans++
					}
				})
				for _, nd := range m.nodes {
					if int(nd.depth) == top && nd.count > 0 {
						ctxs++
					}
				}
				st := m.Stats()
				if st.Transitions != trans+len(m.short) || st.Contexts != ctxs {
					t.Errorf("%s: Stats() = %d transitions, %d contexts; walk = %d, %d", when,
						st.Transitions, st.Contexts, trans+len(m.short), ctxs)
				}
				if st.Events != m.Events() {
					t.Errorf("%s: Stats().Events = %d, Events() = %d", when, st.Events, m.Events())
				}
			}
			check("trained")
			d := trained(t, tc.cfg, corpus(36, 4, 50, 20)).TakeDelta()
			if err := m.Apply(d, +1); err != nil {
				t.Fatal(err)
			}
			check("after Apply(+1)")
			if err := m.Apply(d, -1); err != nil {
				t.Fatal(err)
			}
			check("after Apply(-1)")
			all := m.TakeDelta()
			if err := m.Apply(all, -1); err != nil {
				t.Fatal(err)
			}
			check("emptied")
			if st := m.Stats(); st.Events != 0 || st.Transitions != 0 || st.Contexts != 0 {
				t.Errorf("Stats() of an emptied model = %+v, want zero counts", st)
			}
			// The context tree follows the counts: every node but the root
			// is free again (the rolling horizon must not leak nodes).
			if m.child.n != 0 || len(m.free) != len(m.nodes)-1 || m.nodes[0].nchild != 0 {
				t.Errorf("emptied model: %d child keys, %d of %d nodes free, root has %d children; want 0, all but the root, 0",
					m.child.n, len(m.free), len(m.nodes), m.nodes[0].nchild)
			}
		})
	}
}
