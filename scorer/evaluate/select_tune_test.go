package evaluate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

type split struct {
	name          string
	train, normal []Trace
}

// splits returns the normal splits of the selection: the shared split,
// the monotone pair on the second half of validation/, and a seeded random
// pair.
func splits(train, normal []Trace) []split {
	h := len(normal) / 2
	valA, valB := normal[:h], normal[h:]
	r := rand.New(rand.NewPCG(7, 7))
	perm := r.Perm(len(normal))
	var rA, rB []Trace
	for i, p := range perm {
		if i < h {
			rA = append(rA, normal[p])
		} else {
			rB = append(rB, normal[p])
		}
	}
	cat := func(a, b []Trace) []Trace { return append(append([]Trace{}, a...), b...) }
	return []split{
		{"shared", train, normal},
		{"valB/train", train, valB},
		{"valB/train+valA", cat(train, valA), valB},
		{"randB/train", train, rB},
		{"randB/train+randA", cat(train, rA), rB},
	}
}

type seqCand struct {
	name string
	f    func([]ev) float64
}

func meanOf(evs []ev, f func(ev) float64) float64 {
	if len(evs) == 0 {
		return 0
	}
	var s float64
	for _, e := range evs {
		s += f(e)
	}
	return s / float64(len(evs))
}

func quantOf(evs []ev, f func(ev) float64, q float64) float64 {
	v := make([]float64, len(evs))
	for i, e := range evs {
		v[i] = f(e)
	}
	slices.Sort(v)
	return v[min(int(q*float64(len(v))), len(v)-1)]
}

func bandOf(evs []ev, f func(ev) float64, lo, hi float64) float64 {
	v := make([]float64, len(evs))
	for i, e := range evs {
		v[i] = f(e)
	}
	slices.Sort(v)
	a, b := int(lo*float64(len(v))), max(int(math.Ceil(hi*float64(len(v)))), int(lo*float64(len(v)))+1)
	b = min(b, len(v))
	if a >= b {
		a = b - 1
	}
	var s float64
	for _, x := range v[a:b] {
		s += x
	}
	return s / float64(b-a)
}

// novel: the full-length n-gram was never seen.
func novel(e ev) float64 {
	if e.match < e.top {
		return 1
	}
	return 0
}

// coverMarks marks the events that start a new phrase of the greedy
// longest-match cover: a phrase extends while the n-gram of the phrase so
// far (capped at the model order) plus the event was seen.
func coverMarks(evs []ev) []float64 {
	out := make([]float64, len(evs))
	m := 0 // length of the current phrase before this event
	for i, e := range evs {
		need := min(m, e.top-1) + 1
		if i > 0 && e.match >= need {
			m++
			continue
		}
		out[i] = 1
		m = 1
	}
	return out
}

func seqCands() []seqCand {
	sur := func(e ev) float64 { return e.s }
	exc := func(e ev) float64 { return e.s - e.ent }
	return []seqCand{
		{"mean surprise", func(e []ev) float64 { return meanOf(e, sur) }},
		{"band excess [.5,.8]", func(e []ev) float64 { return bandOf(e, exc, 0.5, 0.8) }},
		{"excess q.75", func(e []ev) float64 { return quantOf(e, exc, 0.75) }},
		{"excess q.90", func(e []ev) float64 { return quantOf(e, exc, 0.9) }},
		{"surprise q.90", func(e []ev) float64 { return quantOf(e, sur, 0.9) }},
		{"mean excess", func(e []ev) float64 { return meanOf(e, exc) }},
		{"band surprise [.5,.8]", func(e []ev) float64 { return bandOf(e, sur, 0.5, 0.8) }},
		{"band surprise [.5,.95]", func(e []ev) float64 { return bandOf(e, sur, 0.5, 0.95) }},
		{"band surprise [0,.95]", func(e []ev) float64 { return bandOf(e, sur, 0, 0.95) }},
		{"band surprise [.25,1]", func(e []ev) float64 { return bandOf(e, sur, 0.25, 1) }},
		{"mean surprise clip 10", func(e []ev) float64 { return meanOf(e, func(e ev) float64 { return min(e.s, 10) }) }},
		{"novel rate", func(e []ev) float64 { return meanOf(e, novel) }},
		{"cover rate", func(e []ev) float64 {
			c := coverMarks(e)
			var s float64
			for _, x := range c {
				s += x
			}
			return s / float64(len(c))
		}},
		{"missing depth", func(e []ev) float64 { return meanOf(e, func(e ev) float64 { return float64(e.top - e.match) }) }},
	}
}

// onlineMax is the highest growing-window mean of vals over the events
// that may alert (from the warm-th on, or the last of a shorter trace).
func onlineMax(vals []float64, w, warm int) float64 {
	best := math.Inf(-1)
	var sum float64
	for i, v := range vals {
		sum += v
		if i >= w {
			sum -= vals[i-w]
		}
		if i+1 >= warm || i == len(vals)-1 {
			best = max(best, sum/float64(min(i+1, w)))
		}
	}
	return best
}

func onlineCands() []seqCand {
	vals := func(evs []ev, f func(ev) float64) []float64 {
		v := make([]float64, len(evs))
		for i, e := range evs {
			v[i] = f(e)
		}
		return v
	}
	var out []seqCand
	for _, w := range []int{30, 100, 300} {
		out = append(out,
			seqCand{fmt.Sprintf("win%d mean surprise", w), func(e []ev) float64 {
				return onlineMax(vals(e, func(e ev) float64 { return e.s }), w, 30)
			}},
			seqCand{fmt.Sprintf("win%d novel rate", w), func(e []ev) float64 { return onlineMax(vals(e, novel), w, 30) }},
			seqCand{fmt.Sprintf("win%d cover rate", w), func(e []ev) float64 { return onlineMax(coverMarks(e), w, 30) }},
		)
	}
	return out
}

type figures struct{ auc, far90, tpr1, tpr5 float64 }

func figuresOf(neg, pos []float64) figures {
	return figures{AUC(neg, pos), FPRAtTPR(neg, pos, 0.9),
		rateAboveThr(pos, neg, 0.01), rateAboveThr(pos, neg, 0.05)}
}

func rateAboveThr(pos, neg []float64, rate float64) float64 {
	s := slices.Clone(neg)
	slices.Sort(s)
	k := int(math.Ceil(rate * float64(len(s))))
	thr := s[len(s)-1-min(k, len(s)-1)]
	_ = thr
	// Threshold as in markov.Threshold: score > thr alerts at most k negatives.
	t := (s[len(s)-k-1] + s[len(s)-k]) / 2
	return rateAbove(pos, t)
}

// TestTuneSelect prints the score-selection tables of RESULTS.md (set
// EVAL_TUNE=select; EVAL_TUNE_ORDERS=4,8 picks orders).
func TestTuneSelect(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "select" {
		t.Skip("set EVAL_TUNE=select to print the selection tables")
	}
	train, normal, attack := loadShared(t)
	orders := []int{4, 6, 8, 10}
	if o := os.Getenv("EVAL_TUNE_ORDERS"); o != "" {
		orders = nil
		for _, f := range strings.Split(o, ",") {
			var n int
			fmt.Sscan(f, &n)
			orders = append(orders, n)
		}
	}
	fams := []string{"Adduser", "Hydra_FTP", "Hydra_SSH"}
	type res struct {
		all   figures
		byFam map[string]figures
	}
	type cell struct {
		cand, split string
		order       int
		seq         bool
		r           res
	}
	sps := splits(train, normal)
	var mu sync.Mutex
	var cells []cell
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, order := range orders {
		for _, sp := range sps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				m := newProto(order, sp.train)
				if d := os.Getenv("EVAL_TUNE_AD"); d != "" {
					fmt.Sscan(d, &m.ad)
				}
				ne := make([][]ev, len(sp.normal))
				for i, tr := range sp.normal {
					ne[i] = m.score(tr)
				}
				ae := make([][]ev, len(attack))
				for i, tr := range attack {
					ae[i] = m.score(tr)
				}
				eval := func(c seqCand, seq bool) {
					neg := make([]float64, len(ne))
					for i, e := range ne {
						neg[i] = c.f(e)
					}
					pos := make([]float64, len(ae))
					byFam := map[string][]float64{}
					for i, e := range ae {
						pos[i] = c.f(e)
						byFam[attack[i].Family] = append(byFam[attack[i].Family], pos[i])
					}
					r := res{all: figuresOf(neg, pos), byFam: map[string]figures{}}
					for f, p := range byFam {
						r.byFam[f] = figuresOf(neg, p)
					}
					mu.Lock()
					cells = append(cells, cell{c.name, sp.name, order, seq, r})
					mu.Unlock()
				}
				for _, c := range seqCands() {
					eval(c, true)
				}
				for _, c := range onlineCands() {
					eval(c, false)
				}
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(cells, func(a, b cell) int {
		if a.seq != b.seq {
			if a.seq {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.cand, b.cand); c != 0 {
			return c
		}
		if a.order != b.order {
			return a.order - b.order
		}
		return strings.Compare(a.split, b.split)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\n| kind | score | order | split | AUC | FAR@90 | TPR@1%% | TPR@5%% | Adduser AUC/FAR | Hydra_FTP AUC/FAR | Hydra_SSH AUC/FAR |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		kind := "online"
		if c.seq {
			kind = "seq"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.4f | %.3f | %.3f | %.3f |", kind, c.cand, c.order, c.split,
			c.r.all.auc, c.r.all.far90, c.r.all.tpr1, c.r.all.tpr5)
		for _, f := range fams {
			fmt.Fprintf(&b, " %.3f / %.3f |", c.r.byFam[f].auc, c.r.byFam[f].far90)
		}
		b.WriteString("\n")
	}
	// Leave one family out: select by the mean AUC on the two other
	// families over every split; report the held-out family.
	for _, seq := range []bool{true, false} {
		fmt.Fprintf(&b, "\nLOFO (seq=%v)\n| held out | chosen on the other two | sel. mean AUC | held-out AUC (mean over splits) | held-out FAR@90 |\n|---|---|---|---|---|\n", seq)
		for _, held := range fams {
			type agg struct {
				sel, hAUC, hFAR float64
				n               int
			}
			by := map[string]*agg{}
			for _, c := range cells {
				if c.seq != seq {
					continue
				}
				k := fmt.Sprintf("%s @%d", c.cand, c.order)
				a := by[k]
				if a == nil {
					a = &agg{}
					by[k] = a
				}
				for _, f := range fams {
					if f != held {
						a.sel += c.r.byFam[f].auc / 2
					}
				}
				a.hAUC += c.r.byFam[held].auc
				a.hFAR += c.r.byFam[held].far90
				a.n++
			}
			keys := make([]string, 0, len(by))
			for k := range by {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(x, y string) int {
				return -cmpF(by[x].sel/float64(by[x].n), by[y].sel/float64(by[y].n))
			})
			for _, k := range keys[:3] {
				a := by[k]
				fmt.Fprintf(&b, "| %s | %s | %.4f | %.4f | %.3f |\n", held, k, a.sel/float64(a.n), a.hAUC/float64(a.n), a.hFAR/float64(a.n))
			}
		}
	}
	t.Log(b.String())
}
