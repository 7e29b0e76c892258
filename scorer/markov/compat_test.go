package markov

import (
	"bytes"
	"errors"
	"math"
	"os"
	"testing"
)

// TestDecodeVersion1 reads a model and a delta written by the version-1
// encoding (order 4, one uint64 per event; testdata made by the code before
// the context tree): they decode to the counts an order-4 model learns from
// the same corpus, re-encode in the current version, and an order-4 delta
// is refused by a model of the default order with ErrOrderMismatch.
func TestDecodeVersion1(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Order = 4
	want := trained(t, cfg, corpus(40, 4, 60, 12))
	wantBytes := encode(t, want)

	b, err := os.ReadFile("testdata/v1_model.bin")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal(version 1) = %v", err)
	}
	if got := encode(t, m); !bytes.Equal(got, wantBytes) {
		t.Errorf("version-1 model re-encoded differs from the same model learned now")
	}

	db, err := os.ReadFile("testdata/v1_delta.bin")
	if err != nil {
		t.Fatal(err)
	}
	var d Delta
	if err := d.UnmarshalBinary(db); err != nil {
		t.Fatalf("Delta.UnmarshalBinary(version 1) = %v", err)
	}
	m4, _ := New(cfg)
	if err := m4.Apply(d, +1); err != nil {
		t.Fatalf("Apply(version-1 delta) to an order-4 model = %v", err)
	}
	if got := encode(t, m4); !bytes.Equal(got, wantBytes) {
		t.Errorf("order-4 model built from the version-1 delta differs from the same model learned now")
	}
	m8, _ := New(DefaultConfig())
	if err := m8.Apply(d, +1); !errors.Is(err, ErrOrderMismatch) {
		t.Errorf("Apply(order-4 delta) to an order-%d model = %v, want ErrOrderMismatch", DefaultConfig().Order, err)
	}
}

// TestScoreMatchesProbability: Score stops walking the orders early
// (scoreTolerance); its surprise stays within 0.002 bits of the exact one,
// and its Match/Span agree with the counts.
func TestScoreMatchesProbability(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			m := trained(t, tc.cfg, corpus(41, 20, 300, 15))
			var h History
			for i, name := range corpus(42, 1, 2000, 16)[0] {
				s := m.Lookup(name)
				st := m.Score(&h, s)
				exact := -math.Log2(m.Probability(&h, s))
				if math.Abs(st.Surprise-exact) > 0.002 {
					t.Fatalf("event %d: Score().Surprise = %v, exact %v", i, st.Surprise, exact)
				}
				if st.Span != min(h.Len(), tc.cfg.Order-1)+1 || st.Match > st.Span || st.Match < 0 {
					t.Fatalf("event %d: Match %d, Span %d, history %d", i, st.Match, st.Span, h.Len())
				}
				h.Push(s)
			}
		})
	}
}
