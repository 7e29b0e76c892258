package capture

import (
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
)

// recordScored runs the pipeline over a capture and returns every decision
// in the order one worker took them.
func recordScored(t *testing.T, cfg pipeline.Config, capturePath string) []pipeline.Scored {
	t.Helper()
	cfg.Workers = 1
	var mu sync.Mutex
	var out []pipeline.Scored
	p, err := pipeline.New(cfg, pipeline.Deps{Journal: nopJournal{}, OnScored: func(s pipeline.Scored) {
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
	}}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	f, err := os.Open(capturePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(context.Background(), zr, p, &Report{}); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	return out
}

// TestTuneProcessScore prints, for candidate online scores computed from
// the pipeline's per-event surprises, process AUC and run detection at
// 1 % and 0.1 % of normal test processes. EVAL_TUNE=capture LAB_DIR=dir.
func TestTuneProcessScore(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "capture" {
		t.Skip("set EVAL_TUNE=capture LAB_DIR=<dir with capture.ndjson.gz and labels.json>")
	}
	dir := os.Getenv("LAB_DIR")
	labels, err := lab.LoadLabels(dir + "/labels.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.DefaultConfig()
	if m := os.Getenv("SYMBOLS"); m != "" {
		cfg.Symbols.Mode = m
	}
	if o := os.Getenv("ORDER"); o != "" {
		fmt.Sscan(o, &cfg.Order)
	}
	evs := recordScored(t, cfg, dir+"/capture.ndjson.gz")
	t.Logf("%d decisions", len(evs))

	type pk struct {
		c   string
		pid int64
		gen int
	}
	gen := map[[2]any]int{}
	procOf := make([]int, len(evs))
	keys := map[pk]int{}
	var procs []pk
	parentOf := map[int]int{} // proc index → parent proc index
	live := map[[2]any]int{}  // (container,pid) → current proc index
	for i, s := range evs {
		g := [2]any{s.ContainerID, s.PID}
		k := pk{s.ContainerID, s.PID, gen[g]}
		idx, ok := keys[k]
		if !ok {
			idx = len(procs)
			keys[k] = idx
			procs = append(procs, k)
			if pi, ok := live[[2]any{s.ContainerID, s.PPID}]; ok && s.PPID > 0 {
				parentOf[idx] = pi
			}
			live[g] = idx
		}
		procOf[i] = idx
		if s.End {
			gen[g]++
			delete(live, g)
		}
	}
	// Ground truth per process: its run, from its first test event.
	runOf := map[int]*lab.Run{}
	test := map[int]bool{}
	for i, s := range evs {
		if s.Time.Before(labels.TestStart) {
			continue
		}
		p := procOf[i]
		if !test[p] {
			test[p] = true
			runOf[p] = labels.Lookup(s.ContainerID, int(s.PID), s.Time)
		}
	}
	// learned symbols per image (learning phase)
	learned := map[string]map[string]bool{}
	for _, s := range evs {
		if s.Time.Before(labels.TestStart) && s.Symbol != "" {
			if learned[s.Image] == nil {
				learned[s.Image] = map[string]bool{}
			}
			learned[s.Image][s.Symbol] = true
		}
	}
	// cusumBy is a per-process CUSUM of inc (the event's contribution less
	// the allowance); with inherit a child starts from its parent's score.
	// A process is scored by its highest value at an event that raised it.
	cusumBy := func(inc func(s pipeline.Scored) float64, inherit bool) func() map[int]float64 {
		return func() map[int]float64 {
			state := map[int]float64{}
			best := map[int]float64{}
			started := map[int]bool{}
			for i, s := range evs {
				p := procOf[i]
				if !started[p] {
					started[p] = true
					if par, ok := parentOf[p]; ok && inherit {
						state[p] = state[par]
					}
				}
				if s.End {
					continue
				}
				d := inc(s)
				state[p] = math.Max(0, state[p]+d)
				if !s.Time.Before(labels.TestStart) && d > 0 {
					best[p] = math.Max(best[p], state[p])
				}
			}
			return best
		}
	}
	cusum := func(k, cap float64, inherit bool) func() map[int]float64 {
		return cusumBy(func(s pipeline.Scored) float64 { return math.Min(s.Surprise, cap) - k }, inherit)
	}
	// Evidence: an event's surprise as a tail probability under the image's
	// held-out (learning-time) surprise distribution, in bits.
	hist := map[string][]float64{}
	for _, s := range evs {
		if s.Learning && !s.End {
			hist[s.Image] = append(hist[s.Image], s.Surprise)
		}
	}
	for _, h := range hist {
		sort.Float64s(h)
	}
	evidence := func(img string, x float64) float64 {
		h := hist[img]
		i := sort.SearchFloat64s(h, x) // values < x
		ge := len(h) - i
		return -math.Log2(float64(ge+1) / float64(len(h)+1))
	}
	pcusum := func(k float64, inherit bool) func() map[int]float64 {
		return cusumBy(func(s pipeline.Scored) float64 { return evidence(s.Image, s.Surprise) - k }, inherit)
	}
	// session2: each process has its own CUSUM; a raising event also
	// raises the scores of its short-lived ancestors (fewer than maxEv
	// events: shells, interpreters), and the process is judged by the
	// highest of its own and those.
	session2 := func(k, cap float64, maxEv int) func() map[int]float64 {
		return func() map[int]float64 {
			state := map[int]float64{}
			count := map[int]int{}
			best := map[int]float64{}
			for i, s := range evs {
				p := procOf[i]
				if s.End {
					continue
				}
				count[p]++
				inc := math.Min(s.Surprise, cap) - k
				state[p] = math.Min(math.Max(0, state[p]+inc), 64)
				score := state[p]
				if inc > 0 {
					a, ok := parentOf[p]
					for depth := 0; ok && depth < 4 && count[a] < maxEv; depth++ {
						state[a] = math.Min(state[a]+inc, 64)
						score = math.Max(score, state[a])
						a, ok = parentOf[a]
					}
				}
				if !s.Time.Before(labels.TestStart) && inc > 0 {
					best[p] = math.Max(best[p], score)
				}
			}
			return best
		}
	}
	maxSurprise := func() map[int]float64 {
		best := map[int]float64{}
		for i, s := range evs {
			if !s.End && !s.Time.Before(labels.TestStart) {
				best[procOf[i]] = math.Max(best[procOf[i]], s.Surprise)
			}
		}
		return best
	}
	novel := func() map[int]float64 {
		best := map[int]float64{}
		for i, s := range evs {
			if !s.End && !s.Time.Before(labels.TestStart) && !learned[s.Image][s.Symbol] {
				best[procOf[i]]++
			}
		}
		return best
	}
	cands := []struct {
		name string
		f    func() map[int]float64
	}{
		{"set membership (novel symbols)", novel},
		{"max surprise", maxSurprise},
	}
	for _, me := range []int{16, 32, 64} {
		cands = append(cands, struct {
			name string
			f    func() map[int]float64
		}{fmt.Sprintf("session2 k=6 cap=16 max=%d", me), session2(6, 16, me)})
	}
	cands = append(cands, struct {
		name string
		f    func() map[int]float64
	}{"cusum k=6 cap=16 (clip 64)", session2(6, 16, 0)})

	for _, k := range []float64{1, 2, 3, 4} {
		for _, tree := range []bool{false, true} {
			cands = append(cands, struct {
				name string
				f    func() map[int]float64
			}{fmt.Sprintf("evidence cusum k=%g tree=%v", k, tree), pcusum(k, tree)})
		}
	}
	for _, cp := range []float64{1000, 20, 16, 12} {
		for _, k := range []float64{4, 6, 8} {
			for _, tree := range []bool{false, true} {
				cands = append(cands, struct {
					name string
					f    func() map[int]float64
				}{fmt.Sprintf("cusum k=%g cap=%g tree=%v", k, cp, tree), cusum(k, cp, tree)})
			}
		}
	}
	for _, c := range cands {
		sc := c.f()
		var neg, pos []float64
		for p := range test {
			r := runOf[p]
			if r != nil && r.Kind == lab.KindAttack {
				pos = append(pos, sc[p])
			} else {
				neg = append(neg, sc[p])
			}
		}
		line := fmt.Sprintf("%-32s AUC %.3f", c.name, evaluate.AUC(neg, pos))
		{
			runs, fa := map[*lab.Run]bool{}, 0
			for p := range test {
				r := runOf[p]
				if sc[p] > 15 {
					if r != nil && r.Kind == lab.KindAttack {
						runs[r] = true
					} else {
						fa++
					}
				}
			}
			line += fmt.Sprintf("  @15: %d runs, %d normal", len(runs), fa)
		}
		for _, b := range []float64{0, 0.001, 0.01, 0.05} {
			sn := slices.Clone(neg)
			sort.Float64s(sn)
			allowed := int(math.Floor(b * float64(len(sn))))
			thr := sn[len(sn)-1-allowed]
			runs := map[*lab.Run]bool{}
			for p := range test {
				if r := runOf[p]; r != nil && r.Kind == lab.KindAttack && sc[p] > thr {
					runs[r] = true
				}
			}
			line += fmt.Sprintf("  @%g%%: %d runs (thr %.1f)", b*100, len(runs), thr)
		}
		t.Log(line)
	}
}

// TestTuneNovelSymbols prints the symbols never seen while learning, by
// how many normal and attack test processes emit them.
func TestTuneNovelSymbols(t *testing.T) {
	if os.Getenv("EVAL_TUNE") != "capture" {
		t.Skip("set EVAL_TUNE=capture LAB_DIR=<dir>")
	}
	dir := os.Getenv("LAB_DIR")
	labels, err := lab.LoadLabels(dir + "/labels.json")
	if err != nil {
		t.Fatal(err)
	}
	evs := recordScored(t, pipeline.DefaultConfig(), dir+"/capture.ndjson.gz")
	learned := map[string]bool{}
	for _, s := range evs {
		if s.Time.Before(labels.TestStart) && s.Symbol != "" {
			learned[s.Image+" "+s.Symbol] = true
		}
	}
	type cnt struct{ normal, drift, attack int }
	novel := map[string]*cnt{}
	for _, s := range evs {
		if s.Time.Before(labels.TestStart) || s.Symbol == "" || learned[s.Image+" "+s.Symbol] {
			continue
		}
		k := s.Image[:min(len(s.Image), 30)] + " | " + s.Symbol
		c := novel[k]
		if c == nil {
			c = &cnt{}
			novel[k] = c
		}
		switch r := labels.Lookup(s.ContainerID, int(s.PID), s.Time); {
		case r == nil:
			c.normal++
		case r.Kind == lab.KindDrift:
			c.drift++
		default:
			c.attack++
		}
	}
	var ks []string
	for k := range novel {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		c := novel[k]
		t.Logf("normal %4d drift %4d attack %4d  %s", c.normal, c.drift, c.attack, k)
	}
}
