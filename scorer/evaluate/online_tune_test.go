package evaluate

import (
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// stepsOf scores every event of every trace against m.
func stepsOf(m *markov.Model, ts []Trace) [][]markov.Step {
	out := make([][]markov.Step, len(ts))
	for i, t := range ts {
		var h markov.History
		out[i] = make([]markov.Step, len(t.Calls))
		for j, c := range t.Calls {
			s := m.Lookup(c)
			out[i][j] = m.Score(&h, s)
			h.Push(s)
		}
	}
	return out
}

// detector turns a sequence's steps into per-event online scores; valid
// marks the events whose score may alert.
type detector struct {
	name string
	run  func(steps []markov.Step, emit func(score float64, valid bool))
}

func maxScore(d detector, steps []markov.Step) float64 {
	best := math.Inf(-1)
	i := 0
	d.run(steps, func(s float64, valid bool) {
		if valid || i == len(steps)-1 {
			best = max(best, s)
		}
		i++
	})
	return best
}

// TestTuneOnline prints the online-detector sweep behind RESULTS.md (set
// EVAL_TUNE=online; EVAL_TUNE_ONLY=running|long|ewma|ewma0|misc picks a
// group, EVAL_TUNE_ORDER=N the model order, EVAL_TUNE_AD=1 absolute
// discounting, EVAL_TUNE_BG=N a likelihood ratio against an order-N
// background model). Every detector's sequence score is its highest value
// over the events it may alert on (a full window, or the last event of a
// shorter sequence), as in Run; thresholds for cal05/cal01 come from the
// held-out training folds only.
func TestTuneOnline(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "online" {
		t.Skip("set EVAL_TUNE=online to print the online-detector sweep")
	}
	train, normal, attack := loadShared(t)
	cfg := DefaultConfig()
	if o := os.Getenv("EVAL_TUNE_ORDER"); o != "" {
		cfg.Model.Order = int(o[0] - '0')
	}
	if os.Getenv("EVAL_TUNE_AD") != "" {
		cfg.Model.Smoothing = markov.AbsoluteDiscount
	}
	held := make([][]markov.Step, len(train))
	var ns, as [][]markov.Step
	var g errgroup.Group
	for f := 0; f < cfg.Folds; f++ {
		g.Go(func() error {
			var rest, in []Trace
			var idx []int
			for i, tr := range train {
				if foldOf(i, len(train), cfg.Folds) != f {
					rest = append(rest, tr)
				} else {
					in = append(in, tr)
					idx = append(idx, i)
				}
			}
			m, err := trainModel(cfg.Model, rest)
			if err != nil {
				return err
			}
			for j, s := range stepsOf(m, in) {
				held[idx[j]] = s
			}
			return nil
		})
	}
	g.Go(func() error {
		m, err := trainModel(cfg.Model, train)
		if err != nil {
			return err
		}
		ns, as = stepsOf(m, normal), stepsOf(m, attack)
		return nil
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if bo := os.Getenv("EVAL_TUNE_BG"); bo != "" {
		// Likelihood ratio against a lower-order background model trained
		// on the same data: Entropy is replaced by the background surprise.
		order := int(bo[0] - '0')
		bcfg := cfg.Model
		bcfg.Order = order
		bg := func(tr []Trace, steps [][]markov.Step, m *markov.Model) {
			b := stepsOf(m, tr)
			for i := range steps {
				for j := range steps[i] {
					steps[i][j].Entropy = b[i][j].Surprise
				}
			}
		}
		for f := 0; f < cfg.Folds; f++ {
			var rest, in []Trace
			var idx []int
			for i, tr := range train {
				if foldOf(i, len(train), cfg.Folds) != f {
					rest = append(rest, tr)
				} else {
					in = append(in, tr)
					idx = append(idx, i)
				}
			}
			m, _ := trainModel(bcfg, rest)
			sub := make([][]markov.Step, len(in))
			for j := range in {
				sub[j] = held[idx[j]]
			}
			bg(in, sub, m)
		}
		m, _ := trainModel(bcfg, train)
		bg(normal, ns, m)
		bg(attack, as, m)
	}

	// Normal per-event statistics from the held-out training folds only.
	var ex, su []float64
	for _, s := range held {
		for _, st := range s {
			ex = append(ex, st.Excess())
			su = append(su, st.Surprise)
		}
	}
	q := func(v []float64, p float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[int(p*float64(len(s)-1))]
	}
	mean := func(v []float64) float64 {
		var a float64
		for _, x := range v {
			a += x
		}
		return a / float64(len(v))
	}
	t.Logf("held excess: mean %.3f p50 %.3f p75 %.3f p90 %.3f p95 %.3f p99 %.3f", mean(ex), q(ex, .5), q(ex, .75), q(ex, .9), q(ex, .95), q(ex, .99))
	t.Logf("held surprise: mean %.3f p50 %.3f p75 %.3f p90 %.3f p95 %.3f p99 %.3f", mean(su), q(su, .5), q(su, .75), q(su, .9), q(su, .95), q(su, .99))

	val := map[string]func(markov.Step) float64{
		"surprise": func(s markov.Step) float64 { return s.Surprise },
		"excess":   func(s markov.Step) float64 { return s.Excess() },
	}
	var dets []detector
	window := func(name string, w int, f func(markov.Step) float64, clip float64) detector {
		return detector{fmt.Sprintf("window %s w=%d clip=%g", name, w, clip), func(steps []markov.Step, emit func(float64, bool)) {
			ring := make([]float64, w)
			var sum float64
			for i, st := range steps {
				v := min(f(st), clip)
				sum += v - ring[i%w]
				ring[i%w] = v
				emit(sum/float64(min(i+1, w)), i+1 >= w)
			}
		}}
	}
	ewma := func(name string, w int, f func(markov.Step) float64, clip float64) detector {
		a := 2 / float64(w+1)
		return detector{fmt.Sprintf("ewma %s w=%d clip=%g", name, w, clip), func(steps []markov.Step, emit func(float64, bool)) {
			var e float64
			for i, st := range steps {
				v := min(f(st), clip)
				if i == 0 {
					e = v
				} else {
					e += a * (v - e)
				}
				emit(e, i+1 >= w)
			}
		}}
	}
	cusum := func(name string, k float64, kname string, f func(markov.Step) float64, clip float64) detector {
		return detector{fmt.Sprintf("cusum %s k=%s(%.2f) clip=%g", name, kname, k, clip), func(steps []markov.Step, emit func(float64, bool)) {
			var s float64
			for _, st := range steps {
				s = max(0, s+min(f(st), clip)-k)
				emit(s, true)
			}
		}}
	}
	band := func(name string, w int, f func(markov.Step) float64, lo, hi float64) detector {
		return detector{fmt.Sprintf("band %s w=%d [%g,%g]", name, w, lo, hi), func(steps []markov.Step, emit func(float64, bool)) {
			ring := make([]float64, w)
			sorted := make([]float64, 0, w)
			for i, st := range steps {
				v := f(st)
				if i >= w {
					old := ring[i%w]
					j, _ := slices.BinarySearch(sorted, old)
					sorted = slices.Delete(sorted, j, j+1)
				}
				ring[i%w] = v
				j, _ := slices.BinarySearch(sorted, v)
				sorted = slices.Insert(sorted, j, v)
				n := len(sorted)
				a, b := int(lo*float64(n)), max(int(hi*float64(n)), int(lo*float64(n))+1)
				var sum float64
				for _, x := range sorted[a:b] {
					sum += x
				}
				emit(sum/float64(b-a), i+1 >= w)
			}
		}}
	}
	rate := func(name string, w int, f func(markov.Step) float64, tau float64, tname string) detector {
		return detector{fmt.Sprintf("rate %s w=%d tau=%s(%.2f)", name, w, tname, tau), func(steps []markov.Step, emit func(float64, bool)) {
			ring := make([]float64, w)
			var sum float64
			for i, st := range steps {
				v := 0.0
				if f(st) > tau {
					v = 1
				}
				sum += v - ring[i%w]
				ring[i%w] = v
				emit(sum/float64(min(i+1, w)), i+1 >= w)
			}
		}}
	}
	ewmab := func(name string, span, warm int, f func(markov.Step) float64) detector {
		a := 2 / float64(span+1)
		return detector{fmt.Sprintf("ewma-bc %s span=%d warm=%d", name, span, warm), func(steps []markov.Step, emit func(float64, bool)) {
			var num, den float64
			for i, st := range steps {
				num = (1-a)*num + a*f(st)
				den = (1-a)*den + a
				emit(num/den, i+1 >= warm)
			}
		}}
	}
	mu := mean(su)
	ewma0 := func(name string, span, warm int, f func(markov.Step) float64, z0 func(markov.Step) float64, zname string) detector {
		a := 2 / float64(span+1)
		return detector{fmt.Sprintf("ewma z0=%s %s span=%d warm=%d", zname, name, span, warm), func(steps []markov.Step, emit func(float64, bool)) {
			var z float64
			for i, st := range steps {
				if i == 0 {
					z = z0(st)
				}
				z += a * (f(st) - z)
				emit(z, i+1 >= warm)
			}
		}}
	}
	running := func(lo, hi float64, minN int) detector {
		return detector{fmt.Sprintf("running band [%g,%g] min=%d", lo, hi, minN), func(steps []markov.Step, emit func(float64, bool)) {
			sq := markov.NewExcessBandSequence(lo, hi)
			for i, st := range steps {
				sq.Add(st)
				emit(sq.Score(), i+1 >= minN)
			}
		}}
	}
	for _, b := range [][2]float64{{0.5, 0.8}, {0.5, 0.9}, {0.6, 0.9}} {
		for _, mn := range []int{30, 50, 100, 200} {
			dets = append(dets, running(b[0], b[1], mn))
		}
	}
	inf := math.Inf(1)
	only := os.Getenv("EVAL_TUNE_ONLY")
	if only == "running" {
		goto run
	}
	if only == "ewma0" {
		for _, span := range []int{100, 150, 200, 250, 300} {
			for _, warm := range []int{30, 50, span} {
				dets = append(dets,
					ewma0("surprise", span, warm, val["surprise"], func(markov.Step) float64 { return mu }, "mu"),
					ewma0("surprise", span, warm, val["surprise"], func(s markov.Step) float64 { return s.Entropy }, "H"),
					ewma0("excess", span, warm, val["excess"], func(markov.Step) float64 { return 0 }, "0"))
			}
		}
		goto run
	}
	if only == "ewma" {
		for _, vn := range []string{"surprise", "excess"} {
			for _, span := range []int{100, 150, 200, 250, 300, 400} {
				for _, warm := range []int{30, 50, span} {
					dets = append(dets, ewmab(vn, span, warm, val[vn]))
				}
			}
		}
		goto run
	}
	if only == "long" {
		for _, vn := range []string{"surprise", "excess"} {
			v := su
			if vn == "excess" {
				v = ex
			}
			for _, w := range []int{60, 80, 100, 150, 200, 300} {
				dets = append(dets, window(vn, w, val[vn], inf), ewma(vn, w, val[vn], inf))
			}
			for _, p := range []float64{0.86, 0.88, 0.9, 0.92} {
				dets = append(dets, cusum(vn, q(v, p), fmt.Sprintf("p%02.0f", p*100), val[vn], inf))
			}
		}
		goto run
	}
	if only == "misc" {
		pos := func(s markov.Step) float64 { return max(s.Excess(), 0) }
		nov := func(s markov.Step) float64 {
			if s.Seen == 0 {
				return 1
			}
			return 0
		}
		lowseen := func(s markov.Step) float64 {
			if s.Seen < 5 {
				return 1
			}
			return 0
		}
		for _, w := range []int{10, 20, 30, 50, 80, 120} {
			dets = append(dets, window("posexcess", w, pos, inf), window("novel", w, nov, inf), window("seen<5", w, lowseen, inf),
				band("posexcess", w, pos, 0.5, 1), band("posexcess", w, pos, 0.25, 0.75))
		}
		goto run
	}
	for _, vn := range []string{"surprise", "excess"} {
		v := su
		if vn == "excess" {
			v = ex
		}
		for _, w := range []int{30, 50, 80, 120, 200} {
			for _, b := range [][2]float64{{0.5, 0.8}, {0.5, 0.9}, {0.6, 0.9}, {0.25, 0.75}, {0.4, 0.8}, {0.5, 1}, {0.7, 1}} {
				dets = append(dets, band(vn, w, val[vn], b[0], b[1]))
			}
			for _, p := range []float64{0.75, 0.8, 0.9, 0.95} {
				dets = append(dets, rate(vn, w, val[vn], q(v, p), fmt.Sprintf("p%02.0f", p*100)))
			}
		}
	}
	for _, vn := range []string{"surprise", "excess"} {
		if only != "" {
			break
		}
		for _, w := range []int{10, 20, 30, 50, 80} {
			for _, clip := range []float64{inf, 8, 4} {
				dets = append(dets, window(vn, w, val[vn], clip), ewma(vn, w, val[vn], clip))
			}
		}
	}
	for _, vn := range []string{"surprise", "excess"} {
		if only != "" {
			break
		}
		v := su
		if vn == "excess" {
			v = ex
		}
		for _, p := range []float64{0.75, 0.8, 0.85, 0.9, 0.95} {
			for _, clip := range []float64{inf, 8, 4} {
				dets = append(dets, cusum(vn, q(v, p), fmt.Sprintf("p%02.0f", p*100), val[vn], clip))
			}
		}
		m := mean(v)
		for _, add := range []float64{0.5, 1, 1.5, 2} {
			dets = append(dets, cusum(vn, m+add, fmt.Sprintf("mean+%g", add), val[vn], inf))
		}
	}
run:
	for _, d := range dets {
		score := func(v [][]markov.Step) []float64 {
			out := make([]float64, len(v))
			for i, s := range v {
				out[i] = maxScore(d, s)
			}
			return out
		}
		hs, n, a := score(held), score(ns), score(as)
		thr05, thr01 := markov.Threshold(hs, 0.05), markov.Threshold(hs, 0.01)
		t.Logf("%-40s auc=%.4f tpr01=%.3f tpr05=%.3f tpr10=%.3f cal05 fpr=%.4f tpr=%.3f cal01 fpr=%.4f tpr=%.3f",
			d.name, AUC(n, a), rateAbove(a, markov.Threshold(n, 0.01)), rateAbove(a, markov.Threshold(n, 0.05)),
			rateAbove(a, markov.Threshold(n, 0.10)), rateAbove(n, thr05), rateAbove(a, thr05), rateAbove(n, thr01), rateAbove(a, thr01))
	}
}

// TestTuneInspect prints what drives the top normal and the attack online
// scores (set EVAL_TUNE=inspect).
func TestTuneInspect(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "inspect" {
		t.Skip("set EVAL_TUNE=inspect")
	}
	train, normal, attack := loadShared(t)
	cfg := DefaultConfig()
	m, err := trainModel(cfg.Model, train)
	if err != nil {
		t.Fatal(err)
	}
	ns, as := stepsOf(m, normal), stepsOf(m, attack)
	w := window30()
	type row struct {
		name           string
		score          float64
		n, oov, unseen int
		hi             int
	}
	mk := func(ts []Trace, ss [][]markov.Step) []row {
		out := make([]row, len(ts))
		for i, s := range ss {
			r := row{name: ts[i].Name, score: maxScore(w, s), n: len(s)}
			for j, st := range s {
				if m.Lookup(ts[i].Calls[j]) == markov.OOV {
					r.oov++
				}
				if st.Seen == 0 {
					r.unseen++
				}
				if st.Surprise > 10 {
					r.hi++
				}
			}
			out[i] = r
		}
		slices.SortFunc(out, func(a, b row) int { return -cmpF(a.score, b.score) })
		return out
	}
	nr, ar := mk(normal, ns), mk(attack, as)
	for _, r := range nr[:60] {
		t.Logf("normal %-30s score %.2f n %d oov %d unseen %d hi %d", r.name, r.score, r.n, r.oov, r.unseen, r.hi)
	}
	for i, r := range ar {
		if i%5 == 0 {
			t.Logf("attack %-30s score %.2f n %d oov %d unseen %d hi %d", r.name, r.score, r.n, r.oov, r.unseen, r.hi)
		}
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func window30() detector {
	return detector{"w30", func(steps []markov.Step, emit func(float64, bool)) {
		w := 30
		ring := make([]float64, w)
		var sum float64
		for i, st := range steps {
			v := st.Surprise
			sum += v - ring[i%w]
			ring[i%w] = v
			emit(sum/float64(min(i+1, w)), i+1 >= w)
		}
	}}
}
