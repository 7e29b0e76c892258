package markov

import (
	"fmt"
	"math"
	"sync"
)

// ctxStat is what the model knows about one context (history).
type ctxStat struct {
	count    uint64  // events seen after this context
	distinct uint64  // distinct symbols seen after it
	slog     float64 // Σ over followers of c·log2(c), for the context's entropy
	// Derived from the above when they change, so that scoring needs no
	// logarithm per order: the interpolation weight λ of this order and
	// λ·H_ML + h2(λ), this order's share of the entropy estimate.
	lambda float64
	hterm  float64
}

// Model is a variable-order Markov chain over Symbols with interpolated
// smoothing. It counts every suffix of each learned history, from the empty
// context up to Order-1 symbols, and interpolates the orders down to a
// uniform distribution over VocabSize symbols, so every symbol, including
// OOV and symbols never seen, has a positive probability.
//
// Concurrency: a Model holds a sync.RWMutex. Scoring methods take the read
// lock and learning methods the write lock, so a Model may be read by many
// goroutines while one learns; uncontended, the lock costs about 10 ns per
// call. A History belongs to one sequence and is not shared.
type Model struct {
	mu    sync.RWMutex
	cfg   Config
	vocab vocab
	ctx   slab[ctxStat] // context key → stats, all orders
	trans slab[uint64]  // transition key → count, all orders
	// short counts events learned with a history shorter than Order-1
	// (sequence starts). With the top-order transitions it is exactly the
	// multiset of learned events, which is what deltas and the encoding carry.
	short   map[uint64]uint64
	pending map[uint64]int64 // event key → count since the last TakeDelta
	events  uint64           // events learned (net of subtracted deltas)
	// Distinct full-length transitions and histories, kept as counts change
	// so that Stats is O(1).
	topTrans, topCtx int
	uniform          float64 // 1/VocabSize
	logK             float64 // log2(VocabSize)
}

// New returns an empty model.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("markov config: %w", err)
	}
	return &Model{
		cfg:     cfg,
		vocab:   newVocab(cfg.VocabSize),
		ctx:     newSlab[ctxStat](1),            // the empty context
		trans:   newSlab[uint64](cfg.VocabSize), // unigram counts
		short:   make(map[uint64]uint64),
		pending: make(map[uint64]int64),
		uniform: 1 / float64(cfg.VocabSize),
		logK:    math.Log2(float64(cfg.VocabSize)),
	}, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Intern returns the symbol for name, adding it to the vocabulary if there
// is room; when the vocabulary is full it returns OOV and counts the
// overflow. Use it for events that will be learned.
func (m *Model) Intern(name string) Symbol {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vocab.intern(name)
}

// Lookup returns the symbol for name, or OOV if the name is unknown. It never
// grows the vocabulary: use it for events that will only be scored.
func (m *Model) Lookup(name string) Symbol {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.vocab.lookup(name)
}

// Name returns the name of s ("<oov>" for OOV or an unknown symbol).
func (m *Model) Name(s Symbol) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.vocab.name(s)
}

// VocabSize returns the number of symbols the distribution is over
// (Config.VocabSize): probabilities of all Symbols below it sum to 1.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// histLen is the usable history length for h.
func (m *Model) histLen(h *History) int {
	l := int(h.n)
	if l > m.cfg.Order-1 {
		l = m.cfg.Order - 1
	}
	return l
}

// Learn records one event: symbol s following history h. It updates the
// counts of every order and the pending delta (see TakeDelta). h is not
// modified; call h.Push(s) afterwards. Learn allocates only when a count
// map grows.
//
// It reports whether the event's full-length transition was new to the
// model (the convergence measure counts these).
func (m *Model) Learn(h *History, s Symbol) (novel bool) {
	if int(s) >= m.cfg.VocabSize {
		s = OOV
	}
	l := m.histLen(h)
	k := transKey(h.packed, l, s)
	m.mu.Lock()
	_, old := m.add(h.packed, l, s, 1)
	novel = old == 0
	m.pending[k]++
	m.mu.Unlock()
	return novel
}

// add adds n occurrences (n < 0 subtracts) of the event (last l symbols of
// packed) → s to all orders. A subtraction below zero is clamped at zero and
// reported as ok = false. old is the event's count before.
func (m *Model) add(packed uint64, l int, s Symbol, n int64) (ok bool, old uint64) {
	ok = true
	top := m.cfg.Order - 1
	if l < top {
		k := transKey(packed, l, s)
		v, fine := addCount(m.short[k], n)
		ok = ok && fine
		if v == 0 {
			delete(m.short, k)
		} else {
			m.short[k] = v
		}
	}
	for k := 0; k <= l; k++ {
		tk := transKey(packed, k, s)
		var tp *uint64
		if n > 0 {
			tp, _ = m.trans.getOrAdd(tk)
		} else if tp = m.trans.get(tk); tp == nil {
			ok = false
			continue
		}
		o := *tp
		nw, fine := addCount(o, n)
		ok = ok && fine
		if k == l {
			old = o
		}
		if nw == 0 {
			m.trans.remove(tk)
		} else {
			*tp = nw
		}
		if o == nw {
			continue
		}
		ck := ctxKey(packed, k)
		cs, added := m.ctx.getOrAdd(ck)
		if added && k == top {
			m.topCtx++
		}
		cs.count = cs.count - o + nw
		cs.slog += xlog(nw) - xlog(o)
		switch {
		case o == 0:
			cs.distinct++
			if k == top {
				m.topTrans++
			}
		case nw == 0:
			cs.distinct--
			if k == top {
				m.topTrans--
			}
		}
		if cs.count == 0 {
			m.ctx.remove(ck)
			if k == top {
				m.topCtx--
			}
			continue
		}
		if cs.distinct == 1 {
			cs.slog = xlog(cs.count) // exact again: no drift with one follower
		}
		m.derive(cs)
	}
	nev, fine := addCount(m.events, n)
	m.events = nev
	return ok && fine, old
}

// derive sets the interpolation weight and entropy term of a context.
func (m *Model) derive(cs *ctxStat) {
	n, t := float64(cs.count), float64(cs.distinct)
	hml := log2u(cs.count) - cs.slog/n
	var hl float64
	if m.cfg.Smoothing == WittenBell {
		cs.lambda = n / (n + t)
		// h2(n/(n+t)) from integer logarithms (table reads).
		hl = max(log2u(cs.count+cs.distinct)-(xlog(cs.count)+xlog(cs.distinct))/(n+t), 0)
	} else {
		cs.lambda = 1 - m.cfg.Discount*t/n
		hl = h2(cs.lambda)
	}
	cs.hterm = cs.lambda*max(hml, 0) + hl
}

func addCount(c uint64, n int64) (uint64, bool) {
	if n < 0 && uint64(-n) > c {
		return 0, false
	}
	return uint64(int64(c) + n), true
}

// Step is the model's view of one event.
type Step struct {
	// Surprise is -log2 P(symbol | history), in bits; finite and ≥ 0.
	Surprise float64
	// Entropy estimates the expected surprise at this history (what the
	// context usually costs), in bits.
	Entropy float64
	// Seen is how often the model saw the whole history (0 if never).
	Seen uint64
	// Order is the length of the longest history the model has seen plus
	// one (0 when even the empty history has no counts: an empty model).
	Order int
}

// Excess is the surprise beyond what the context usually costs
// (Surprise - Entropy): the per-event value the sequence score aggregates.
func (s Step) Excess() float64 { return s.Surprise - s.Entropy }

// Surprise returns -log2 P(s | h) in bits. It is finite for every input.
func (m *Model) Surprise(h *History, s Symbol) float64 {
	return m.Score(h, s).Surprise
}

// Probability returns P(s | h).
func (m *Model) Probability(h *History, s Symbol) float64 {
	m.mu.RLock()
	p, _, _, _ := m.prob(h.packed, m.histLen(h), s, false)
	m.mu.RUnlock()
	return p
}

// Score returns the surprise of s after h and the features the aggregations
// use. It does not modify h or the model; it does not allocate.
func (m *Model) Score(h *History, s Symbol) Step {
	if int(s) >= m.cfg.VocabSize {
		s = OOV
	}
	m.mu.RLock()
	p, ent, seen, order := m.prob(h.packed, m.histLen(h), s, true)
	m.mu.RUnlock()
	return Step{Surprise: -log2(p), Entropy: ent, Seen: seen, Order: order}
}

// log2 is -log2-safe: p is always in (0,1] here, but clamp so that rounding
// can never produce a negative surprise.
func log2(p float64) float64 {
	if p >= 1 {
		return 0
	}
	return math.Log2(p)
}

// prob interpolates from the empty context up to the last l symbols. When
// withEnt is set it also estimates the entropy of the interpolated
// distribution recursively: H ≈ λ·H_ML + (1-λ)·H_lower + h2(λ).
func (m *Model) prob(packed uint64, l int, s Symbol, withEnt bool) (p, ent float64, seen uint64, order int) {
	p = m.uniform
	ent = m.logK
	wb := m.cfg.Smoothing == WittenBell
	d := m.cfg.Discount
	for k := 0; k <= l; k++ {
		cs := m.ctx.get(ctxKey(packed, k))
		if cs == nil {
			break
		}
		var c float64
		if tp := m.trans.get(transKey(packed, k, s)); tp != nil {
			c = float64(*tp)
		}
		n := float64(cs.count)
		t := float64(cs.distinct)
		if wb {
			p = (c + t*p) / (n + t)
		} else {
			p = (max(c-d, 0) + d*t*p) / n
		}
		if withEnt {
			ent = cs.hterm + (1-cs.lambda)*ent
		}
		if k == l {
			seen = cs.count
		}
		order = k + 1
	}
	return p, ent, seen, order
}

func h2(x float64) float64 {
	if x <= 0 || x >= 1 {
		return 0
	}
	return -x*math.Log2(x) - (1-x)*math.Log2(1-x)
}
