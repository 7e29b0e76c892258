package evaluate

import (
	"math"
)

// protoModel is a reference interpolated Witten-Bell n-gram model with
// string keys, for the score selection only (any order, slow, exact).
type protoModel struct {
	order  int
	ids    map[string]int
	ctx    []map[string]*protoCtx // by context length
	trans  []map[string]uint64    // by context length: context+symbol
	vocab  float64
	hasSym map[int]bool
	ad     float64 // absolute discount, 0 for Witten-Bell
}

type protoCtx struct {
	n, t          uint64
	slog          float64
	lambda, hterm float64
}

func key(syms []int) string {
	b := make([]byte, 0, 2*len(syms))
	for _, s := range syms {
		b = append(b, byte(s), byte(s>>8))
	}
	return string(b)
}

func newProto(order int, train []Trace) *protoModel {
	m := &protoModel{order: order, ids: map[string]int{}, vocab: 512, hasSym: map[int]bool{}}
	for k := 0; k < order; k++ {
		m.ctx = append(m.ctx, map[string]*protoCtx{})
		m.trans = append(m.trans, map[string]uint64{})
	}
	for _, t := range train {
		syms := make([]int, len(t.Calls))
		for i, c := range t.Calls {
			id, ok := m.ids[c]
			if !ok {
				id = len(m.ids) + 1
				m.ids[c] = id
			}
			syms[i] = id
		}
		for i := range syms {
			l := min(i, order-1)
			for k := 0; k <= l; k++ {
				m.trans[k][key(syms[i-k:i+1])]++
			}
		}
	}
	for k := 0; k < order; k++ {
		for tk, c := range m.trans[k] {
			ck := tk[:len(tk)-2]
			cs := m.ctx[k][ck]
			if cs == nil {
				cs = &protoCtx{}
				m.ctx[k][ck] = cs
			}
			cs.n += c
			cs.t++
			cs.slog += float64(c) * math.Log2(float64(c))
		}
		for _, cs := range m.ctx[k] {
			n, t := float64(cs.n), float64(cs.t)
			cs.lambda = n / (n + t)
			hml := math.Log2(n) - cs.slog/n
			cs.hterm = cs.lambda*max(hml, 0) + h2(cs.lambda)
		}
	}
	return m
}

func h2(x float64) float64 {
	if x <= 0 || x >= 1 {
		return 0
	}
	return -x*math.Log2(x) - (1-x)*math.Log2(1-x)
}

// ev is one scored event: surprise, context entropy, the length of the
// longest seen n-gram ending here (0: symbol never seen) and the full
// n-gram length available (min(i, order-1)+1).
type ev struct {
	s, ent     float64
	match, top int
}

func (m *protoModel) score(t Trace) []ev {
	syms := make([]int, len(t.Calls))
	for i, c := range t.Calls {
		syms[i] = m.ids[c] // 0 = OOV
	}
	out := make([]ev, len(syms))
	for i := range syms {
		l := min(i, m.order-1)
		p := 1 / m.vocab
		ent := math.Log2(m.vocab)
		match := 0
		for k := 0; k <= l; k++ {
			cs := m.ctx[k][key(syms[i-k:i])]
			if cs == nil {
				break
			}
			c := float64(m.trans[k][key(syms[i-k:i+1])])
			if c > 0 {
				match = k + 1
			}
			if m.ad > 0 {
				p = (max(c-m.ad, 0) + m.ad*float64(cs.t)*p) / float64(cs.n)
			} else {
				p = (c + float64(cs.t)*p) / float64(cs.n+cs.t)
			}
			ent = cs.hterm + (1-cs.lambda)*ent
		}
		out[i] = ev{s: -math.Log2(p), ent: ent, match: match, top: l + 1}
	}
	return out
}
