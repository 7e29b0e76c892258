package evaluate

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// surprisesOf scores every event of every trace against m.
func surprisesOf(m *markov.Model, ts []Trace) [][]float64 {
	out := make([][]float64, len(ts))
	for i, t := range ts {
		var h markov.History
		out[i] = make([]float64, len(t.Calls))
		for j, c := range t.Calls {
			s := m.Lookup(c)
			out[i][j] = m.Score(&h, s).Surprise
			h.Push(s)
		}
	}
	return out
}

// heldSurprises scores each training sequence with a model trained on the
// other k-1 contiguous folds.
func heldSurprises(t testing.TB, cfg markov.Config, train []Trace, k int) [][]float64 {
	held := make([][]float64, len(train))
	var g errgroup.Group
	g.SetLimit(2)
	for f := 0; f < k; f++ {
		g.Go(func() error {
			var rest, in []Trace
			var idx []int
			for i, tr := range train {
				if foldOf(i, len(train), k) != f {
					rest = append(rest, tr)
				} else {
					in = append(in, tr)
					idx = append(idx, i)
				}
			}
			m, err := trainModel(cfg, rest)
			if err != nil {
				return err
			}
			for j, s := range surprisesOf(m, in) {
				held[idx[j]] = s
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return held
}

// scanDet is an online detector: mk learns what it needs from the held-out
// calibration sample (per-event surprises of normal training sequences
// never learned by the scoring model) and returns the per-event scorer,
// which fills out[i] with the score after event i, -Inf where it may not
// alert yet (the last event of a sequence always may).
type scanDet struct {
	name string
	mk   func(held [][]float64) func(sur, out []float64)
}

func seqMaxes(f func(sur, out []float64), v [][]float64, keep bool) ([]float64, [][]float64) {
	out := make([]float64, len(v))
	var all [][]float64
	for i, s := range v {
		o := make([]float64, len(s))
		f(s, o)
		out[i] = slices.Max(o)
		if keep {
			all = append(all, o)
		}
	}
	return out, all
}

func meanWin(w int) func(sur, out []float64) {
	return func(sur, out []float64) {
		var sum float64
		for i, v := range sur {
			sum += v
			if i >= w {
				sum -= sur[i-w]
			}
			if i+1 >= w || i == len(sur)-1 {
				out[i] = sum / float64(min(i+1, w))
			} else {
				out[i] = math.Inf(-1)
			}
		}
	}
}

func ewmaBC(span, warm int) func(sur, out []float64) {
	a := 2 / float64(span+1)
	return func(sur, out []float64) {
		var num, den float64
		for i, v := range sur {
			num = (1-a)*num + a*v
			den = (1-a)*den + a
			if i+1 >= warm || i == len(sur)-1 {
				out[i] = num / den
			} else {
				out[i] = math.Inf(-1)
			}
		}
	}
}

// perEventQuantile is the p-quantile of a scorer's valid per-event values
// over the held-out sample.
func perEventQuantile(f func(sur, out []float64), held [][]float64, p float64) float64 {
	var all []float64
	for _, s := range held {
		o := make([]float64, len(s))
		f(s, o)
		for _, x := range o {
			if !math.IsInf(x, -1) {
				all = append(all, x)
			}
		}
	}
	slices.Sort(all)
	return all[min(int(p*float64(len(all))), len(all)-1)]
}

// multiScale is the max over scales of each scale's score divided by (or
// minus) its normalizer; a scale takes part once full, and the smallest
// scale's partial window judges a sequence shorter than it.
func multiScale(fs []func(sur, out []float64), norm []float64, diff bool) func(sur, out []float64) {
	return func(sur, out []float64) {
		tmp := make([]float64, len(sur))
		for i := range out {
			out[i] = math.Inf(-1)
		}
		for j, f := range fs {
			f(sur, tmp)
			for i, x := range tmp {
				if math.IsInf(x, -1) {
					continue
				}
				if j > 0 && i == len(sur)-1 && len(sur) < scaleLen[j] {
					continue // partial longer scale: only the smallest judges a short sequence
				}
				var r float64
				if diff {
					r = x - norm[j]
				} else {
					r = x / norm[j]
				}
				out[i] = max(out[i], r)
			}
		}
	}
}

// scaleLen is set by the multi-scale builders (test-only shortcut).
var scaleLen []int

// TestTuneScan prints the issue-4 sweep behind RESULTS.md (set
// EVAL_TUNE=scan; EVAL_TUNE_ONLY=single|multi|seqnorm|partial|cal|diag|robust
// picks a group): calibration from 2, 5 and 10 held-out folds, multi-scale
// scans, growing windows with a warm-up, and the empirical, conformal and
// tail-fit (peaks-over-threshold) calibrated thresholds.
func TestTuneScan(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "scan" {
		t.Skip("set EVAL_TUNE=scan to print the calibration-fold and multi-scale sweep")
	}
	train, normal, attack := loadShared(t)
	cfg := DefaultConfig()
	folds := []int{2, 5, 10}
	if os.Getenv("EVAL_TUNE_ONLY") == "robust" {
		folds = []int{2, 3, 4, 5, 10}
	}
	held := map[int][][]float64{}
	for _, k := range folds {
		held[k] = heldSurprises(t, cfg.Model, train, k)
	}
	m, err := trainModel(cfg.Model, train)
	if err != nil {
		t.Fatal(err)
	}
	ns, as := surprisesOf(m, normal), surprisesOf(m, attack)
	nEvents := 0
	for _, s := range ns {
		nEvents += len(s)
	}
	lens := func(v [][]float64) string {
		l := make([]float64, len(v))
		for i, s := range v {
			l[i] = float64(len(s))
		}
		slices.Sort(l)
		return fmt.Sprintf("p10 %.0f p50 %.0f p90 %.0f mean %.0f", l[len(l)/10], l[len(l)/2], l[len(l)*9/10], func() float64 {
			var a float64
			for _, x := range l {
				a += x
			}
			return a / float64(len(l))
		}())
	}
	t.Logf("lengths train %s | normal %s | attack %s", lens(held[2]), lens(ns), lens(as))

	var dets []scanDet
	fixed := func(name string, f func(sur, out []float64)) scanDet {
		return scanDet{name, func([][]float64) func(sur, out []float64) { return f }}
	}
	only := os.Getenv("EVAL_TUNE_ONLY")
	if only == "" || only == "single" {
		for _, w := range []int{60, 80, 100, 120, 150, 200} {
			dets = append(dets, fixed(fmt.Sprintf("window %d", w), meanWin(w)))
		}
		for _, span := range []int{100, 150, 200, 300} {
			for _, warm := range []int{30, 60} {
				dets = append(dets, fixed(fmt.Sprintf("ewma-bc span %d warm %d", span, warm), ewmaBC(span, warm)))
			}
		}
	}
	if only == "" || only == "multi" {
		for _, sc := range [][]int{{15, 60, 200}, {30, 60, 120}, {20, 60, 150}, {30, 100, 300}, {15, 60}, {60, 200}, {10, 30, 100, 300}, {30, 200}} {
			for _, p := range []float64{0.99, 0.999, 0.9999} {
				for _, diff := range []bool{false, true} {
					sc, p, diff := sc, p, diff
					name := fmt.Sprintf("multi %v norm p%g %s", sc, p, map[bool]string{false: "ratio", true: "diff"}[diff])
					dets = append(dets, scanDet{name, func(h [][]float64) func(sur, out []float64) {
						fs := make([]func(sur, out []float64), len(sc))
						norm := make([]float64, len(sc))
						for j, w := range sc {
							fs[j] = meanWin(w)
							norm[j] = perEventQuantile(fs[j], h, p)
						}
						scaleLen = sc
						return multiScale(fs, norm, diff)
					}})
				}
			}
		}
	}
	if strings.HasPrefix(only, "seqnorm") {
		// normalizer = per-scale calibrated per-sequence-max quantile
		for _, sc := range [][]int{{15, 60, 200}, {30, 60, 120}, {20, 60, 150}, {30, 100, 300}, {15, 60}, {60, 200}} {
			for _, r := range []float64{0.05, 0.01} {
				sc, r := sc, r
				name := fmt.Sprintf("multi %v norm seq-q%g ratio", sc, r)
				dets = append(dets, scanDet{name, func(h [][]float64) func(sur, out []float64) {
					fs := make([]func(sur, out []float64), len(sc))
					norm := make([]float64, len(sc))
					for j, w := range sc {
						fs[j] = meanWin(w)
						hm, _ := seqMaxes(fs[j], h, false)
						norm[j] = markov.Threshold(hm, r)
					}
					scaleLen = sc
					return multiScale(fs, norm, false)
				}})
			}
		}
	}

	if only == "partial" {
		for _, w := range []int{60, 80, 100, 120, 150, 200, 300} {
			for _, m := range []int{15, 20, 30, 45, 60} {
				if m >= w {
					continue
				}
				dets = append(dets, fixed(fmt.Sprintf("window %d from %d", w, m), growWin(w, m)))
			}
		}
	}
	if only == "robust" {
		for _, d := range []scanDet{fixed("window 60", meanWin(60)), fixed("window 300 from 30", growWin(300, 30)), fixed("ewma-bc span 100 warm 30", ewmaBC(100, 30))} {
			f := d.mk(nil)
			n, _ := seqMaxes(f, ns, false)
			a, _ := seqMaxes(f, as, false)
			var line strings.Builder
			// bootstrap of the oracle TPR@5 % over normal and attack sequences
			rng := uint64(1)
			next := func(k int) int {
				rng = rng*6364136223846793005 + 1442695040888963407
				return int((rng >> 33) % uint64(k))
			}
			var bs []float64
			for b := 0; b < 500; b++ {
				nb, ab := make([]float64, len(n)), make([]float64, len(a))
				for i := range nb {
					nb[i] = n[next(len(n))]
				}
				for i := range ab {
					ab[i] = a[next(len(a))]
				}
				bs = append(bs, rateAbove(ab, markov.Threshold(nb, 0.05)))
			}
			slices.Sort(bs)
			fmt.Fprintf(&line, "%-26s oracle05 %.3f boot p5 %.3f p50 %.3f p95 %.3f |", d.name, rateAbove(a, markov.Threshold(n, 0.05)), bs[25], bs[250], bs[475])
			for _, k := range folds {
				hs, _ := seqMaxes(f, held[k], false)
				fmt.Fprintf(&line, " k%d emp %.4f/%.4f pot %.4f/%.4f", k, rateAbove(n, markov.Threshold(hs, 0.01)), rateAbove(n, markov.Threshold(hs, 0.05)),
					rateAbove(n, markov.TailThreshold(hs, 0.01, 0.2)), rateAbove(n, markov.TailThreshold(hs, 0.05, 0.2)))
			}
			t.Log(line.String())
		}
		return
	}
	if only == "cal" {
		for _, w := range []int{60, 100, 200, 300} {
			dets = append(dets, fixed(fmt.Sprintf("window %d", w), meanWin(w)))
			for _, m := range []int{20, 30, 45} {
				dets = append(dets, fixed(fmt.Sprintf("window %d from %d", w, m), growWin(w, m)))
			}
		}
		dets = append(dets, scanDet{"sequence band", nil})
		for _, span := range []int{100, 150, 200, 300} {
			dets = append(dets, fixed(fmt.Sprintf("ewma-bc span %d warm 30", span), ewmaBC(span, 30)))
		}
		for _, d := range dets {
			var hs, n, a []float64
			if d.mk == nil {
				hs, n, a = seqBand(t, cfg, train, normal, attack)
			} else {
				f := d.mk(held[2])
				hs, _ = seqMaxes(f, held[2], false)
				n, _ = seqMaxes(f, ns, false)
				a, _ = seqMaxes(f, as, false)
			}
			var line strings.Builder
			fmt.Fprintf(&line, "%-28s oracle05 %d/%d", d.name, int(math.Round(rateAbove(a, markov.Threshold(n, 0.05))*float64(len(a)))), len(a))
			for _, r := range []float64{0.01, 0.05} {
				emp := markov.Threshold(hs, r)
				s := slices.Clone(hs)
				slices.Sort(s)
				conf := s[min(int(math.Ceil(float64(len(s)+1)*(1-r)))-1, len(s)-1)]
				// exponential peaks-over-threshold on the top 20 %
				fmt.Fprintf(&line, " | r%.2f emp %.4f (%d) conf %.4f pot", r, rateAbove(n, emp), int(math.Round(rateAbove(n, emp)*float64(len(n)))), rateAbove(n, conf))
				for _, top := range []float64{0.3, 0.2, 0.15, 0.1} {
					u := s[int((1-top)*float64(len(s)))]
					var ex float64
					cnt := 0
					for _, x := range s {
						if x > u {
							ex += x - u
							cnt++
						}
					}
					pot := u + ex/float64(cnt)*math.Log(float64(cnt)/float64(len(s))/r)
					fmt.Fprintf(&line, " %g:%.4f/%.3f", top, rateAbove(n, pot), rateAbove(a, pot))
				}
			}
			t.Log(line.String())
		}
		return
	}
	if only == "diag" {
		for _, w := range []int{60, 100, 200} {
			f := meanWin(w)
			for _, k := range folds {
				hs, _ := seqMaxes(f, held[k], false)
				n, _ := seqMaxes(f, ns, false)
				thr := markov.Threshold(hs, 0.05)
				var line strings.Builder
				fmt.Fprintf(&line, "diag window %d k%d thr %.3f:", w, k, thr)
				for _, b := range [][2]int{{0, 150}, {150, 300}, {300, 600}, {600, 1200}, {1200, 1 << 30}} {
					cnt := func(v []float64, l [][]float64) (int, int) {
						a, c := 0, 0
						for i := range v {
							if len(l[i]) >= b[0] && len(l[i]) < b[1] {
								c++
								if v[i] > thr {
									a++
								}
							}
						}
						return a, c
					}
					ha, hc := cnt(hs, held[k])
					na, nc := cnt(n, ns)
					fmt.Fprintf(&line, " [%d,%d) held %d/%d=%.3f normal %d/%d=%.3f |", b[0], b[1], ha, hc, float64(ha)/float64(max(hc, 1)), na, nc, float64(na)/float64(max(nc, 1)))
				}
				t.Log(line.String())
			}
		}
	}
	for _, d := range dets {
		var line strings.Builder
		for ki, k := range folds {
			f := d.mk(held[k])
			hs, _ := seqMaxes(f, held[k], false)
			n, nall := seqMaxes(f, ns, true)
			a, _ := seqMaxes(f, as, false)
			if ki == 0 {
				fmt.Fprintf(&line, "%-42s auc=%.4f tpr01=%.3f tpr05=%.3f tpr10=%.3f |", d.name, AUC(n, a),
					rateAbove(a, markov.Threshold(n, 0.01)), rateAbove(a, markov.Threshold(n, 0.05)), rateAbove(a, markov.Threshold(n, 0.10)))
			}
			thr05, thr01 := markov.Threshold(hs, 0.05), markov.Threshold(hs, 0.01)
			alerts := 0
			for _, o := range nall {
				w := make([]float32, len(o))
				for i, x := range o {
					w[i] = float32(x)
				}
				alerts += countAlerts(w, thr05, 0.8*thr05, nil)
			}
			fmt.Fprintf(&line, " k%d cal01 %.4f cal05 %.4f (tpr %.3f) apm %.0f |", k, rateAbove(n, thr01), rateAbove(n, thr05), rateAbove(a, thr05),
				float64(alerts)/float64(nEvents)*1e6)
		}
		t.Log(line.String())
	}
}

// growWin is the mean of the last min(i+1, w) events, valid from event m
// (a sliding window that starts as a growing one).
func growWin(w, m int) func(sur, out []float64) {
	return func(sur, out []float64) {
		var sum float64
		for i, v := range sur {
			sum += v
			if i >= w {
				sum -= sur[i-w]
			}
			if i+1 >= m || i == len(sur)-1 {
				out[i] = sum / float64(min(i+1, w))
			} else {
				out[i] = math.Inf(-1)
			}
		}
	}
}

// seqBand returns the end-of-sequence scores of the 2-fold held-out
// training, normal and attack sequences.
func seqBand(t testing.TB, cfg Config, train, normal, attack []Trace) (h, n, a []float64) {
	held := make([]float64, len(train))
	for f := 0; f < 2; f++ {
		var rest []Trace
		for i, tr := range train {
			if foldOf(i, len(train), 2) != f {
				rest = append(rest, tr)
			}
		}
		m, _ := trainModel(cfg.Model, rest)
		for i, tr := range train {
			if foldOf(i, len(train), 2) == f {
				held[i] = scoreTrace(m, cfg, tr, false).seq
			}
		}
	}
	m, _ := trainModel(cfg.Model, train)
	for _, tr := range normal {
		n = append(n, scoreTrace(m, cfg, tr, false).seq)
	}
	for _, tr := range attack {
		a = append(a, scoreTrace(m, cfg, tr, false).seq)
	}
	return held, n, a
}
