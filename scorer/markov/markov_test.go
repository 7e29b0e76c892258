package markov

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// corpus returns deterministic pseudo-random sequences over n names with
// some structure (a few loops), so that every order has counts.
func corpus(seed uint64, seqs, length, n int) [][]string {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]string, seqs)
	for i := range out {
		state := r.IntN(n)
		for j := 0; j < length; j++ {
			if r.IntN(4) == 0 {
				state = r.IntN(n)
			} else {
				state = (state*7 + 3) % n
			}
			out[i] = append(out[i], "s"+strconv.Itoa(state))
		}
	}
	return out
}

func trained(t testing.TB, cfg Config, data [][]string) *Model {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	for _, seq := range data {
		var h History
		for _, name := range seq {
			s := m.Intern(name)
			m.Learn(&h, s)
			h.Push(s)
		}
	}
	return m
}

func encode(t testing.TB, m *Model) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary() = %v", err)
	}
	return b
}

func configs() []struct {
	name string
	cfg  Config
} {
	ad := DefaultConfig()
	ad.Smoothing = AbsoluteDiscount
	o1 := DefaultConfig()
	o1.Order = 1
	o6 := DefaultConfig()
	o6.Order = MaxOrder
	small := DefaultConfig()
	small.VocabSize = 8
	return []struct {
		name string
		cfg  Config
	}{{"default", DefaultConfig()}, {"absolute-discount", ad}, {"order1", o1}, {"order6", o6}, {"vocab8", small}}
}

func TestProbabilitiesSumToOne(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			m := trained(t, tc.cfg, corpus(1, 20, 200, 12))
			// Histories: seen ones, a partly seen one, an unseen one, and
			// one holding OOV and never-learned symbols.
			hists := []History{{}}
			var h History
			for _, name := range corpus(2, 1, 12, 12)[0] {
				h.Push(m.Lookup(name))
				hists = append(hists, h)
			}
			var odd History
			odd.Push(OOV)
			odd.Push(Symbol(tc.cfg.VocabSize - 1))
			hists = append(hists, odd)
			for i, h := range hists {
				var sum float64
				for s := 0; s < m.VocabSize(); s++ {
					p := m.Probability(&h, Symbol(s))
					if !(p > 0) {
						t.Fatalf("history %d: Probability(%d) = %v, want > 0", i, s, p)
					}
					sum += p
				}
				if math.Abs(sum-1) > 1e-9 {
					t.Errorf("history %d: sum of Probability over vocabulary = %.12f, want 1", i, sum)
				}
			}
		})
	}
}

func TestTrainTwiceSameBytes(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			data := corpus(3, 30, 150, 40)
			a, b := encode(t, trained(t, tc.cfg, data)), encode(t, trained(t, tc.cfg, data))
			if !bytes.Equal(a, b) {
				t.Fatalf("MarshalBinary differs between two trainings on the same data")
			}
			if tc.cfg.VocabSize <= 40 {
				return // a full vocabulary keeps the names that came first
			}
			// Reversed sequence order: same counts, same bytes.
			rev := make([][]string, len(data))
			for i := range data {
				rev[len(data)-1-i] = data[i]
			}
			if c := encode(t, trained(t, tc.cfg, rev)); !bytes.Equal(a, c) {
				t.Errorf("MarshalBinary depends on sequence order")
			}
		})
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			m := trained(t, tc.cfg, corpus(4, 20, 100, 30))
			b := encode(t, m)
			m2, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal() = %v", err)
			}
			if b2 := encode(t, m2); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding a decoded model changed its bytes")
			}
			var h1, h2 History
			for _, name := range corpus(5, 1, 50, 30)[0] {
				s1, s2 := m.Lookup(name), m2.Lookup(name)
				if g, w := m2.Surprise(&h2, s2), m.Surprise(&h1, s1); math.Abs(g-w) > 1e-9 {
					t.Fatalf("decoded Surprise(%s) = %v, want %v", name, g, w)
				}
				h1.Push(s1)
				h2.Push(s2)
			}
			if g, w := m2.Stats().Events, m.Stats().Events; g != w {
				t.Errorf("decoded Stats().Events = %d, want %d", g, w)
			}
		})
	}
}

func TestDeltaAddSubtract(t *testing.T) {
	for _, tc := range configs() {
		t.Run(tc.name, func(t *testing.T) {
			m := trained(t, tc.cfg, corpus(6, 10, 100, 20))
			m.TakeDelta()
			before := encode(t, m)
			// An hour of new events, some with new names.
			other := trained(t, tc.cfg, corpus(7, 5, 80, 30))
			d := other.TakeDelta()
			raw, err := d.MarshalBinary()
			if err != nil {
				t.Fatalf("Delta.MarshalBinary() = %v", err)
			}
			var d2 Delta
			if err := d2.UnmarshalBinary(raw); err != nil {
				t.Fatalf("Delta.UnmarshalBinary() = %v", err)
			}
			if err := m.Apply(d2, +1); err != nil {
				t.Fatalf("Apply(+1) = %v", err)
			}
			if g, w := m.Stats().Events, uint64(10*100+d.Events()); g != w {
				t.Errorf("Stats().Events after Apply(+1) = %d, want %d", g, w)
			}
			if err := m.Apply(d2, -1); err != nil {
				t.Fatalf("Apply(-1) = %v", err)
			}
			if after := encode(t, m); !bytes.Equal(before, after) {
				t.Fatalf("Apply(d,+1) then Apply(d,-1) changed the model bytes")
			}
			if err := m.Apply(d2, -1); !errors.Is(err, ErrUnderflow) {
				t.Errorf("Apply(-1) of a delta never added = %v, want ErrUnderflow", err)
			}
		})
	}
}

func TestDeltaRebuildsModel(t *testing.T) {
	cfg := DefaultConfig()
	data := corpus(8, 20, 100, 25)
	want := encode(t, trained(t, cfg, data))
	// Learn in two "buckets", rebuild from the two deltas.
	src, _ := New(cfg)
	var ds []Delta
	for i, seq := range data {
		var h History
		for _, n := range seq {
			s := src.Intern(n)
			src.Learn(&h, s)
			h.Push(s)
		}
		if i == 9 || i == len(data)-1 {
			ds = append(ds, src.TakeDelta())
		}
	}
	dst, _ := New(cfg)
	for i, d := range ds {
		if err := dst.Apply(d, +1); err != nil {
			t.Fatalf("Apply(delta %d) = %v", i, err)
		}
	}
	if got := encode(t, dst); !bytes.Equal(got, want) {
		t.Errorf("model rebuilt from deltas differs from the trained model")
	}
	if d := src.TakeDelta(); d.Len() != 0 {
		t.Errorf("TakeDelta() after TakeDelta() has %d entries, want 0", d.Len())
	}
}

func TestDeltaOrderMismatch(t *testing.T) {
	a := trained(t, DefaultConfig(), corpus(9, 2, 20, 5))
	cfg := DefaultConfig()
	cfg.Order = 2
	b, _ := New(cfg)
	if err := b.Apply(a.TakeDelta(), 1); err == nil {
		t.Errorf("Apply(delta of order %d) on order %d = nil, want error", a.Config().Order, cfg.Order)
	}
}

func TestVocabularyBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.VocabSize = 4
	m, _ := New(cfg)
	var h History
	for i := 0; i < 10; i++ {
		s := m.Intern("name" + strconv.Itoa(i))
		if int(s) >= cfg.VocabSize {
			t.Fatalf("Intern() = %d, want < %d", s, cfg.VocabSize)
		}
		if sur := m.Surprise(&h, s); math.IsInf(sur, 0) || math.IsNaN(sur) || sur < 0 {
			t.Fatalf("Surprise() = %v, want finite ≥ 0", sur)
		}
		m.Learn(&h, s)
		h.Push(s)
	}
	st := m.Stats()
	if st.Symbols != 3 || st.VocabOverflow != 7 {
		t.Errorf("Stats() = %+v, want 3 symbols and 7 overflows", st)
	}
	if got := m.Lookup("unknown"); got != OOV {
		t.Errorf("Lookup(unknown) = %d, want OOV", got)
	}
	if got := m.Name(OOV); got != "<oov>" {
		t.Errorf("Name(OOV) = %q, want <oov>", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"order zero", func(c *Config) { c.Order = 0 }, "order: 0 not in [1,16]"},
		{"order too high", func(c *Config) { c.Order = 17 }, "order: 17 not in [1,16]"},
		{"smoothing", func(c *Config) { c.Smoothing = "laplace" }, `smoothing: "laplace"`},
		{"discount", func(c *Config) { c.Smoothing, c.Discount = AbsoluteDiscount, 1 }, "discount: 1 not in (0,1)"},
		{"vocab", func(c *Config) { c.VocabSize = 2000 }, "vocab_size: 2000 not in [2,1024]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want))):
				t.Errorf("Validate() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzSurprise(f *testing.F) {
	m := trained(f, DefaultConfig(), corpus(10, 10, 100, 20))
	f.Add([]byte{1, 2, 3, 4, 5, 6})
	f.Add([]byte{0, 0, 0, 255, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		var h History
		for i := 0; i+1 < len(in); i += 2 {
			s := Symbol(uint16(in[i])<<8 | uint16(in[i+1]))
			st := m.Score(&h, s)
			for _, v := range []float64{st.Surprise, st.Entropy, st.Excess()} {
				if math.IsInf(v, 0) || math.IsNaN(v) {
					t.Fatalf("Score(%d) = %+v, want finite values", s, st)
				}
			}
			if st.Surprise < 0 {
				t.Fatalf("Score(%d).Surprise = %v, want ≥ 0", s, st.Surprise)
			}
			h.Push(s)
		}
	})
}

func FuzzDecode(f *testing.F) {
	m := trained(f, DefaultConfig(), corpus(11, 3, 30, 10))
	b, _ := m.MarshalBinary()
	d, _ := m.TakeDelta().MarshalBinary()
	f.Add(b)
	f.Add(d)
	f.Fuzz(func(t *testing.T, in []byte) {
		if m, err := Unmarshal(in); err == nil {
			if _, err := m.MarshalBinary(); err != nil {
				t.Fatalf("MarshalBinary of a decoded model = %v", err)
			}
		}
		var d Delta
		if err := d.UnmarshalBinary(in); err == nil {
			m2, _ := New(DefaultConfig())
			_ = m2.Apply(d, 1)
		}
	})
}
