package markov

import (
	"fmt"
	"math"
	"sync"
)

// node is one context (history) of the context tree: the last depth
// symbols of a sequence. Its parent is the context without its oldest
// symbol, sym that oldest symbol, so walking up from a node to the root
// spells the context oldest first.
//
// A node is what a score reads of a context, 32 bytes, so that a node is
// one cache line's half and never straddles two: the counts, and hterm,
// derived from them (and from Model.slog) when they change so that
// scoring needs no logarithm per order: λ·H_ML + h2(λ) with λ the
// interpolation weight of this order, this order's share of the entropy
// estimate.
type node struct {
	count    uint64 // events seen after this context
	hterm    float64
	parent   int32
	nchild   int32  // child nodes: a node is freed only without counts and children
	distinct uint16 // distinct symbols seen after it (at most VocabSize)
	sym      Symbol
	// only is the context's one follower ORed with onlyKnown when it has
	// one and the model knows which (it learned it; after a subtraction
	// leaves one of two it does not know which, and only is 0): its count
	// is then the context's, and a score needs no transition lookup. Deep
	// contexts, the ones whose lookups miss the caches, mostly have one.
	only  Symbol
	depth uint8
}

// onlyKnown marks node.only as valid (symbols have symbolBits bits).
const onlyKnown Symbol = 1 << 15

// Model is a variable-order Markov chain over Symbols with interpolated
// smoothing. It counts every suffix of each learned history, from the empty
// context up to Order-1 symbols, and interpolates the orders down to a
// uniform distribution over VocabSize symbols, so every symbol, including
// OOV and symbols never seen, has a positive probability.
//
// The contexts form a tree (a suffix trie of the learned histories, newest
// symbol at the root's children): a context of k symbols is the child of
// its (k-1)-symbol suffix, keyed by the parent's node id and the added
// (older) symbol, so any order fits one uint64 key and a score walks one
// child lookup per order, then one transition lookup per order whose
// context has more than one follower (open-addressing tables, see table;
// a score on a trained order-10 model costs about 250 ns, mostly cache
// misses of the dependent child lookups). Node ids are reused once a
// node has neither counts nor children, so the tree's size follows the
// counts under the rolling horizon (subtracted deltas).
//
// Concurrency: a Model holds a sync.RWMutex. Scoring methods take the read
// lock and learning methods the write lock, so a Model may be read by many
// goroutines while one learns; uncontended, the lock costs about 10 ns per
// call. A History belongs to one sequence and is not shared.
type Model struct {
	mu    sync.RWMutex
	cfg   Config
	vocab vocab
	nodes []node // node 0 is the empty context
	// slog[id] is Σ over the followers of node id of c·log2(c), for the
	// context's entropy: learning reads it, scoring does not, so it lives
	// beside the nodes rather than in them.
	slog      []float64
	free      []int32      // freed node ids
	child     table[int32] // parent id<<symbolBits | symbol → child id (parent ≠ 0)
	rootChild []int32      // the root's children by symbol; 0 = none
	trans     slab[uint64] // node id<<symbolBits | symbol → count, all orders
	// short counts events learned with a history shorter than Order-1
	// (sequence starts). With the top-order transitions it is exactly the
	// multiset of learned events, which is what deltas and the encoding carry.
	short   map[eventKey]uint64
	pending map[eventKey]int64 // event → count since the last TakeDelta
	events  uint64             // events learned (net of subtracted deltas)
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
		nodes:   make([]node, 1, 64), // the empty context
		slog:    make([]float64, 1, 64),
		trans:   newSlab[uint64](cfg.VocabSize), // the root's (unigram) counts are direct
		short:   make(map[eventKey]uint64),
		pending: make(map[eventKey]int64),
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
	k := makeKey(&h.syms, l, s)
	m.mu.Lock()
	_, old := m.add(&h.syms, l, s, 1)
	novel = old == 0
	m.pending[k]++
	m.mu.Unlock()
	return novel
}

// childOf returns the id of the context made of id's context preceded by
// sym, or 0 if the tree has no such node.
func (m *Model) childOf(id int32, sym Symbol) int32 {
	if id == 0 {
		if int(sym) < len(m.rootChild) {
			return m.rootChild[sym]
		}
		return 0
	}
	if c := m.child.get(uint64(id)<<symbolBits | uint64(sym)); c != nil {
		return *c
	}
	return 0
}

// addChild creates the child of parent for sym (absent before).
func (m *Model) addChild(parent int32, sym Symbol) int32 {
	var id int32
	if n := len(m.free); n > 0 {
		id = m.free[n-1]
		m.free = m.free[:n-1]
	} else {
		id = int32(len(m.nodes))
		m.nodes = append(m.nodes, node{})
		m.slog = append(m.slog, 0)
	}
	m.nodes[id] = node{parent: parent, sym: sym, depth: m.nodes[parent].depth + 1}
	m.nodes[parent].nchild++
	if parent == 0 {
		if int(sym) >= len(m.rootChild) {
			m.rootChild = append(m.rootChild, make([]int32, int(sym)+1-len(m.rootChild))...)
		}
		m.rootChild[sym] = id
	} else {
		c, _ := m.child.getOrAdd(uint64(parent)<<symbolBits | uint64(sym))
		*c = id
	}
	return id
}

// release frees node id if it has neither counts nor children, and then
// its ancestors in turn.
func (m *Model) release(id int32) {
	for id != 0 {
		nd := &m.nodes[id]
		if nd.count != 0 || nd.nchild != 0 {
			return
		}
		parent, sym := nd.parent, nd.sym
		if parent == 0 {
			m.rootChild[sym] = 0
		} else {
			m.child.remove(uint64(parent)<<symbolBits | uint64(sym))
		}
		*nd = node{}
		m.slog[id] = 0
		m.free = append(m.free, id)
		m.nodes[parent].nchild--
		id = parent
	}
}

// add adds n occurrences (n < 0 subtracts) of the event (last l symbols of
// hist, newest first) → s to all orders. A subtraction below zero is
// clamped at zero and reported as ok = false. old is the event's count
// before.
func (m *Model) add(hist *[MaxOrder - 1]Symbol, l int, s Symbol, n int64) (ok bool, old uint64) {
	ok = true
	top := m.cfg.Order - 1
	if l < top {
		k := makeKey(hist, l, s)
		v, fine := addCount(m.short[k], n)
		ok = ok && fine
		if v == 0 {
			delete(m.short, k)
		} else {
			m.short[k] = v
		}
	}
	id := int32(0)
	for k := 0; k <= l; k++ {
		if k > 0 {
			c := m.childOf(id, hist[k-1])
			if c == 0 {
				if n <= 0 {
					ok = false // nothing counted here or deeper
					break
				}
				c = m.addChild(id, hist[k-1])
			}
			id = c
		}
		tk := uint64(id)<<symbolBits | uint64(s)
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
		cs := &m.nodes[id]
		if cs.count == 0 && k == top {
			m.topCtx++
		}
		cs.count = cs.count - o + nw
		m.slog[id] += xlog(nw) - xlog(o)
		switch {
		case o == 0:
			cs.distinct++
			cs.only = 0
			if cs.distinct == 1 {
				cs.only = s | onlyKnown
			}
			if k == top {
				m.topTrans++
			}
		case nw == 0:
			cs.distinct--
			cs.only = 0 // one of two left: which one is not known here
			if k == top {
				m.topTrans--
			}
		}
		if cs.count == 0 {
			if k == top {
				m.topCtx--
			}
			m.slog[id], cs.hterm = 0, 0
			if id != 0 && cs.nchild == 0 {
				// Deeper nodes of this event have no counts either
				// (their counts are part of this one's): they were
				// released already or are about to be.
				m.release(id)
				if k < l {
					break
				}
			}
			continue
		}
		if cs.distinct == 1 {
			m.slog[id] = xlog(cs.count) // exact again: no drift with one follower
		}
		m.derive(cs, m.slog[id])
	}
	nev, fine := addCount(m.events, n)
	m.events = nev
	return ok && fine, old
}

// derive sets the entropy term of a context whose followers' Σ c·log2(c)
// is slog.
func (m *Model) derive(cs *node, slog float64) {
	n, t := float64(cs.count), float64(cs.distinct)
	hml := log2u(cs.count) - slog/n
	var lambda, hl float64
	if m.cfg.Smoothing == WittenBell {
		lambda = n / (n + t)
		// h2(n/(n+t)) from integer logarithms (table reads).
		distinct := uint64(cs.distinct)
		hl = max(log2u(cs.count+distinct)-(xlog(cs.count)+xlog(distinct))/(n+t), 0)
	} else {
		lambda = 1 - m.cfg.Discount*t/n
		hl = h2(lambda)
	}
	cs.hterm = lambda*max(hml, 0) + hl
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
	// Match is the length of the longest n-gram ending with this event
	// that the model has counted (its history's last Match-1 symbols, then
	// the symbol); 0 when the symbol never followed any history.
	Match int
	// Span is the n-gram length the model could use for this event:
	// min(history held, Order-1) + 1.
	Span int
}

// Novel reports whether the event's full-length n-gram (Span symbols) was
// never counted: the event starts a segment the model has not seen. The
// covering rate is the share of such events.
func (s Step) Novel() bool { return s.Match < s.Span }

// Excess is the surprise beyond what the context usually costs
// (Surprise - Entropy): the per-event value the sequence score aggregates.
func (s Step) Excess() float64 { return s.Surprise - s.Entropy }

// Surprise returns -log2 P(s | h) in bits. It is finite for every input.
func (m *Model) Surprise(h *History, s Symbol) float64 {
	return m.Score(h, s).Surprise
}

// Probability returns P(s | h).
func (m *Model) Probability(h *History, s Symbol) float64 {
	if int(s) >= m.cfg.VocabSize {
		s = OOV
	}
	m.mu.RLock()
	r := m.prob(&h.syms, m.histLen(h), s, false, 0)
	m.mu.RUnlock()
	return r.p
}

// Score returns the surprise of s after h and the features the aggregations
// use. It does not modify h or the model; it does not allocate.
func (m *Model) Score(h *History, s Symbol) Step {
	if int(s) >= m.cfg.VocabSize {
		s = OOV
	}
	l := m.histLen(h)
	m.mu.RLock()
	r := m.prob(&h.syms, l, s, true, scoreTolerance)
	m.mu.RUnlock()
	return Step{Surprise: -log2(r.p), Entropy: r.ent, Seen: r.seen, Order: r.order, Match: r.match, Span: l + 1}
}

// log2 is -log2-safe: p is always in (0,1] here, but clamp so that rounding
// can never produce a negative surprise.
func log2(p float64) float64 {
	if p >= 1 {
		return 0
	}
	return math.Log2(p)
}

// probResult is prob's answer.
type probResult struct {
	p, ent float64
	seen   uint64 // count of the whole history
	count  uint64 // count of the whole transition
	order  int    // longest counted history + 1
	match  int    // longest counted n-gram ending with the symbol
}

// scoreTolerance is the relative error of Score's probability: the walk
// down the orders stops once what the lower orders could still add is below
// this share of the probability so far (at most 1.5e-6 bits of surprise).
// Normal events sit in deep contexts seen many times, whose lower orders
// weigh almost nothing, so a score reads three or four orders instead of
// all of them. Probability, Explain and TopTransitions are exact.
const scoreTolerance = 1e-3

// prob interpolates the orders from the longest context of the last l
// symbols of hist (newest first) the model has counted down to the uniform
// distribution: P = Σ_k W_k·λ_k·ML_k(s) + W·uniform, where W_k is the
// product of (1-λ_j) over the orders above k. It walks the context tree
// from the root to find that context, then the orders from the top down,
// stopping when the weight left is below tol times the probability so far
// (tol = 0: every order). When withEnt is set it also estimates the entropy
// of the interpolated distribution, H ≈ Σ_k W_k·(λ_k·H_ML,k + h2(λ_k)) +
// W·log2(VocabSize), the recursion λ·H_ML + (1-λ)·H_lower + h2(λ) unrolled.
func (m *Model) prob(hist *[MaxOrder - 1]Symbol, l int, s Symbol, withEnt bool, tol float64) (r probResult) {
	// The context path, one child lookup per order: each is keyed by the
	// id the previous one found, a chain of dependent loads, so the walk
	// reads nothing else.
	// childOf and the table probe are written out here: a call per order
	// costs as much as the arithmetic of the order.
	var ids [MaxOrder]int32
	d := 0 // ids[0..d] are on the path
	if l >= 1 && int(hist[0]) < len(m.rootChild) {
		if c := m.rootChild[hist[0]]; c != 0 {
			ids[1], d = c, 1
		}
	}
	if ct := &m.child; d == 1 && ct.n > 0 {
		slots, shift := ct.slots, ct.shift
		mask := uint64(len(slots) - 1)
		for k := 2; k <= l; k++ {
			key := uint64(ids[k-1])<<symbolBits | uint64(hist[k-1])
			var c int32
			for i := (key * fibMul) >> shift; ; i = (i + 1) & mask {
				sl := &slots[i]
				if sl.key == key {
					c = sl.val
					break
				}
				if sl.key == 0 {
					break
				}
			}
			if c == 0 {
				break
			}
			ids[k], d = c, k
		}
	}
	// The nodes and the transitions to s of the whole path next: their
	// loads depend only on ids, so the processor overlaps their misses
	// instead of taking them one order at a time. The path ends above the
	// first context without counts (an empty model's root).
	nodes := m.nodes
	var cs [MaxOrder]*node
	for k := 0; k <= d; k++ {
		nd := &nodes[ids[k]]
		if nd.count == 0 {
			d = k - 1
			break
		}
		cs[k] = nd
	}
	if d < 0 {
		r.p, r.ent = m.uniform, m.logK
		return r
	}
	var tc [MaxOrder]uint64 // transition counts, valid where found
	var found uint32        // bit k: the transition ids[k] → s is counted
	for k := d; k >= 0; k-- {
		if cs := cs[k]; cs.only != 0 {
			// Its one follower: s or nothing.
			if cs.only == s|onlyKnown {
				tc[k] = cs.count
				found |= 1 << k
			}
			continue
		}
		key := uint64(ids[k])<<symbolBits | uint64(s)
		if tr := &m.trans; key < uint64(tr.directMax) {
			if key < uint64(len(tr.has)) && tr.has[key] {
				tc[k] = tr.direct[key]
				found |= 1 << k
			}
		} else if t := &tr.tab; t.n > 0 {
			mask := uint64(len(t.slots) - 1)
			for i := (key * fibMul) >> t.shift; ; i = (i + 1) & mask {
				sl := &t.slots[i]
				if sl.key == key {
					tc[k] = sl.val
					found |= 1 << k
					break
				}
				if sl.key == 0 {
					break
				}
			}
		}
	}
	r.order = d + 1
	if d == l {
		r.seen = cs[d].count
	}
	wb := m.cfg.Smoothing == WittenBell
	disc := m.cfg.Discount
	var p, ent float64
	w := 1.0 // weight of the orders below the current one
	for k := d; k >= 0; k-- {
		cs := cs[k]
		var c float64
		if found&(1<<k) != 0 {
			c = float64(tc[k])
			if r.match == 0 {
				r.match = k + 1
				if k == l {
					r.count = tc[k]
				}
			}
		}
		if withEnt {
			ent += w * cs.hterm
		}
		n, t := float64(cs.count), float64(cs.distinct)
		if wb {
			p += w * c / (n + t)
			w *= t / (n + t)
		} else {
			p += w * max(c-disc, 0) / n
			w *= disc * t / n
		}
		if w < tol*p {
			r.p, r.ent = p, ent
			return r
		}
	}
	r.p, r.ent = p+w*m.uniform, ent+w*m.logK
	return r
}

func h2(x float64) float64 {
	if x <= 0 || x >= 1 {
		return 0
	}
	return -x*math.Log2(x) - (1-x)*math.Log2(1-x)
}
