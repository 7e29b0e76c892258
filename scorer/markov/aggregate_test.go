package markov

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantile(t *testing.T) {
	tests := []struct {
		name string
		vals func(r *rand.Rand) float64
		p    float64
	}{
		{"uniform median", func(r *rand.Rand) float64 { return r.Float64() * 10 }, 0.5},
		{"normal p75", func(r *rand.Rand) float64 { return r.NormFloat64() * 3 }, 0.75},
		{"exponential p90", func(r *rand.Rand) float64 { return r.ExpFloat64() * 2 }, 0.9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			q := NewQuantile(tc.p)
			var all []float64
			for i := 0; i < 200000; i++ { // enough to force bin halving
				v := tc.vals(r)
				all = append(all, v)
				q.Add(v)
			}
			slices.Sort(all)
			want := all[int(tc.p*float64(len(all)))]
			if got := q.Value(); math.Abs(got-want) > 2*histBinWidth {
				t.Errorf("Value() = %v, want %v ± %v", got, want, 2*histBinWidth)
			}
		})
	}
}

func TestBandMean(t *testing.T) {
	q := NewQuantile(0.5)
	for i := 0; i < 100; i++ {
		q.Add(float64(i % 10)) // 0..9, ten of each
	}
	// Values between the 50 % and 80 % quantiles are 5, 6 and 7 (bin centres
	// add half a bin).
	if got, want := q.BandMean(0.5, 0.8), 6+histBinWidth/2; math.Abs(got-want) > 1e-9 {
		t.Errorf("BandMean(0.5, 0.8) = %v, want %v", got, want)
	}
	var empty Quantile
	if got := empty.BandMean(0.5, 0.8); got != 0 {
		t.Errorf("BandMean of nothing = %v, want 0", got)
	}
	for _, s := range []Sequence{NewMeanSequence(), NewExcessBandSequence(DefaultBandLow, DefaultBandHigh)} {
		s.Add(Step{Surprise: math.NaN()})
		s.Add(Step{Surprise: 1e300, Entropy: -1e300})
		if got := s.Score(); math.IsNaN(got) || math.IsInf(got, 0) {
			t.Errorf("Sequence.Score() with extreme values = %v, want finite", got)
		}
	}
}

func TestSequenceMeanAndCoverRate(t *testing.T) {
	s := NewMeanSequence()
	steps := []Step{
		{Surprise: 1, Match: 8, Span: 8},
		{Surprise: 2, Match: 3, Span: 8}, // novel: its 8-gram was never counted
		{Surprise: 6, Match: 0, Span: 8}, // novel: a symbol never seen
		{Surprise: 3, Match: 2, Span: 2}, // a sequence start, fully seen
	}
	for _, st := range steps {
		s.Add(st)
	}
	if got := s.Score(); got != 3 {
		t.Errorf("Score() = %v, want the mean surprise 3", got)
	}
	if got := s.CoverRate(); got != 0.5 {
		t.Errorf("CoverRate() = %v, want 0.5", got)
	}
	if s.Len() != 4 {
		t.Errorf("Len() = %d, want 4", s.Len())
	}
	s.Reset()
	if s.Score() != 0 || s.CoverRate() != 0 || s.Len() != 0 {
		t.Errorf("after Reset: Score %v, CoverRate %v, Len %d; want zeros", s.Score(), s.CoverRate(), s.Len())
	}
}

func TestWindow(t *testing.T) {
	w, err := NewWindow(3)
	if err != nil {
		t.Fatalf("NewWindow(3) = %v", err)
	}
	steps := []float64{1, 2, 3, 4, 8}
	wants := []float64{1, 1.5, 2, 3, 5}
	for i, v := range steps {
		if got := w.Push(Symbol(i+1), Step{Surprise: v}); math.Abs(got-wants[i]) > 1e-6 {
			t.Errorf("Push #%d = %v, want %v", i, got, wants[i])
		}
	}
	if !w.Full() {
		t.Errorf("Full() = false after 5 pushes, want true")
	}
	if got := w.WindowSymbols(); !slices.Equal(got, []Symbol{3, 4, 5}) {
		t.Errorf("WindowSymbols() = %v, want [3 4 5]", got)
	}
	w.Reset()
	if w.Full() || w.Score() != 0 {
		t.Errorf("after Reset: Full() = %v, Score() = %v, want false, 0", w.Full(), w.Score())
	}
	if _, err := NewWindow(0); err == nil {
		t.Errorf("NewWindow(0) = nil error, want error")
	}
}

func TestWarmWindow(t *testing.T) {
	w, err := NewWarmWindow(4, 2)
	if err != nil {
		t.Fatalf("NewWarmWindow(4, 2) = %v", err)
	}
	steps := []float64{2, 4, 6, 8, 10}
	wants := []float64{2, 3, 4, 5, 7} // a growing mean until 4 events are held
	ready := []bool{false, true, true, true, true}
	for i, v := range steps {
		if got := w.Push(Symbol(i+1), Step{Surprise: v}); math.Abs(got-wants[i]) > 1e-6 {
			t.Errorf("Push #%d = %v, want %v", i, got, wants[i])
		}
		if w.Ready() != ready[i] {
			t.Errorf("Ready() after push #%d = %v, want %v", i, w.Ready(), ready[i])
		}
	}
	w.Reset()
	if w.Ready() {
		t.Errorf("Ready() after Reset = true, want false")
	}
	if w, _ := NewWarmWindow(3, 10); w.Warmup() != 3 {
		t.Errorf("NewWarmWindow(3, 10).Warmup() = %d, want 3 (at most the length)", w.Warmup())
	}
	if w, _ := NewWindow(5); w.Warmup() != 5 {
		t.Errorf("NewWindow(5).Warmup() = %d, want 5 (ready when full)", w.Warmup())
	}
	if _, err := NewWarmWindow(3, 0); err == nil {
		t.Errorf("NewWarmWindow(3, 0) = nil error, want error")
	}
}

func TestTailThreshold(t *testing.T) {
	if got := TailThreshold(nil, 0.05, 0.2); !math.IsInf(got, 1) {
		t.Errorf("TailThreshold(nil) = %v, want +Inf", got)
	}
	// Exponential with mean 1: the value exceeded at rate r is -ln r.
	r := rand.New(rand.NewPCG(1, 2))
	sample := make([]float64, 20000)
	for i := range sample {
		sample[i] = r.ExpFloat64()
	}
	for _, rate := range []float64{0.05, 0.01, 0.001} {
		want := -math.Log(rate)
		if got := TailThreshold(sample, rate, 0.2); math.Abs(got-want) > 0.1*want {
			t.Errorf("TailThreshold(exp, %v) = %.3f, want about %.3f", rate, got, want)
		}
	}
	if got, want := TailThreshold(sample, 0.3, 0.2), Threshold(sample, 0.3); got != want {
		t.Errorf("TailThreshold at a rate above the tail = %v, want Threshold's %v", got, want)
	}
}

func TestAlarm(t *testing.T) {
	var a Alarm
	scores := []float64{1, 5, 6, 4.5, 5.5, 3, 5, 2}
	want := []bool{false, true, false, false, false, false, true, false}
	for i, s := range scores {
		if got := a.Update(s, 5, 4); got != want[i] {
			t.Errorf("Update(%v) #%d = %v, want %v", s, i, got, want[i])
		}
	}
}

func TestThreshold(t *testing.T) {
	sample := make([]float64, 100)
	for i := range sample {
		sample[i] = float64(i)
	}
	tests := []struct {
		rate float64
		want float64
	}{{0.01, 98.5}, {0.05, 94.5}, {0, 99}, {1, math.Inf(-1)}}
	for _, tc := range tests {
		if got := Threshold(sample, tc.rate); got != tc.want {
			t.Errorf("Threshold(0..99, %v) = %v, want %v", tc.rate, got, tc.want)
		}
	}
	if got := Threshold(nil, 0.01); !math.IsInf(got, 1) {
		t.Errorf("Threshold(nil) = %v, want +Inf", got)
	}
}

func TestConvergence(t *testing.T) {
	c := NewConvergence()
	c.Block = 100
	for i := 0; i < 100; i++ {
		c.Observe(i%10 == 0) // 10 % new: not converged
	}
	if c.Converged() || c.Rate() != 0.1 {
		t.Fatalf("after a novel block: Converged() = %v, Rate() = %v, want false, 0.1", c.Converged(), c.Rate())
	}
	for i := 0; i < 300; i++ {
		c.Observe(false)
	}
	if !c.Converged() {
		t.Errorf("after 3 quiet blocks: Converged() = false, want true")
	}
	for i := 0; i < 100; i++ {
		c.Observe(true)
	}
	if c.Converged() {
		t.Errorf("after a novel block: Converged() = true, want false")
	}
}

func TestExplain(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Order = 4 // a history the 9-event corpus fills
	m := trained(t, cfg, [][]string{{"a", "b", "c", "a", "b", "c", "a", "b", "c"}})
	w, _ := NewWindow(4)
	var h History
	for _, n := range []string{"a", "b", "c", "a", "c", "b"} {
		s := m.Lookup(n)
		st := m.Score(&h, s)
		w.Push(s, st)
		h.Push(s)
	}
	ex := m.Explain(w, 2)
	if len(ex) != 2 {
		t.Fatalf("Explain(k=2) returned %d transitions, want 2", len(ex))
	}
	if ex[0].Probability > ex[1].Probability {
		t.Errorf("Explain not least likely first: %v > %v", ex[0].Probability, ex[1].Probability)
	}
	// The least likely step is "a → c" after the learned history "b c a".
	if got := m.Name(ex[0].Symbol); got != "c" || ex[0].Offset != 2 {
		t.Errorf("Explain()[0] = symbol %q at %d, want \"c\" at 2", got, ex[0].Offset)
	}
	if len(ex[0].History) != cfg.Order-1 || ex[0].HistorySeen == 0 {
		t.Errorf("Explain()[0] history %v seen %d, want %d symbols seen > 0", ex[0].History, ex[0].HistorySeen, cfg.Order-1)
	}
}

func TestLog2u(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		c := uint64(1) + r.Uint64N(1<<uint(1+r.IntN(62)))
		got, want := log2u(c), math.Log2(float64(c))
		if math.Abs(got-want) > 1e-13*max(want, 1) {
			t.Fatalf("log2u(%d) = %v, want %v", c, got, want)
		}
		if gx, wx := xlog(c), float64(c)*want; c > 1 && math.Abs(gx-wx) > 1e-12*wx {
			t.Fatalf("xlog(%d) = %v, want %v", c, gx, wx)
		}
	}
}

// TestWindowFixedPointNoDrift: after a million events the window score is
// still the mean of its last events to within the fixed-point resolution,
// and out-of-range surprises are held at the ends of the range.
func TestWindowFixedPointNoDrift(t *testing.T) {
	w, err := NewWindow(60)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	last := make([]float64, 0, 1_000_000)
	for range 1_000_000 {
		v := rng.ExpFloat64() * 3
		last = append(last, v)
		w.Push(1, Step{Surprise: v})
	}
	var sum float64
	for _, v := range last[len(last)-60:] {
		sum += v
	}
	if got, want := w.Score(), sum/60; math.Abs(got-want) > windowUnit {
		t.Errorf("Score after 1e6 pushes = %.6f, want %.6f ± %g", got, want, windowUnit)
	}
	w.Reset()
	for _, v := range []float64{math.Inf(1), 1e9, math.NaN(), -3} {
		w.Push(1, Step{Surprise: v})
	}
	if got, want := w.Score(), 2*windowMaxBits/4; got != want {
		t.Errorf("Score of +Inf, 1e9, NaN, -3 = %g, want %g (clamped to [0, %g])", got, want, windowMaxBits)
	}
}

// TestExplainLongWindowCoversLatestEvents: a window longer than
// ExplainEvents scores all its events but explains the latest
// ExplainEvents, each with the history that preceded it.
func TestExplainLongWindowCoversLatestEvents(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	var train []string
	for i := range 200 {
		train = append(train, names[i%len(names)])
	}
	m := trained(t, DefaultConfig(), [][]string{train})
	w, err := NewWarmWindow(300, 30)
	if err != nil {
		t.Fatal(err)
	}
	var h History
	var pushed []Symbol
	for i := range 500 {
		s := m.Lookup(names[(i*i)%len(names)]) // unlike training, so every step is explained
		w.Push(s, m.Score(&h, s))
		h.Push(s)
		pushed = append(pushed, s)
	}
	if got := w.WindowSymbols(); !slices.Equal(got, pushed[len(pushed)-ExplainEvents:]) {
		t.Errorf("WindowSymbols = %d symbols, want the latest %d", len(got), ExplainEvents)
	}
	ex := m.Explain(w, -1)
	if len(ex) != ExplainEvents {
		t.Fatalf("Explain returned %d transitions, want %d", len(ex), ExplainEvents)
	}
	base := len(pushed) - ExplainEvents
	order := DefaultConfig().Order
	for _, tr := range ex {
		i := base + tr.Offset
		if tr.Symbol != pushed[i] || len(tr.History) > order-1 {
			t.Fatalf("transition at offset %d: symbol %d history %v, want symbol %d", tr.Offset, tr.Symbol, tr.History, pushed[i])
		}
		if want := pushed[i-len(tr.History) : i]; !slices.Equal(tr.History, want) {
			t.Fatalf("transition at offset %d: history %v, want %v", tr.Offset, tr.History, want)
		}
	}
	// The score still covers all 300 events.
	var sum float64
	h = History{}
	var scores []float64
	for _, s := range pushed {
		scores = append(scores, m.Score(&h, s).Surprise)
		h.Push(s)
	}
	for _, v := range scores[len(scores)-300:] {
		sum += v
	}
	if got := w.Score(); math.Abs(got-sum/300) > 2*windowUnit {
		t.Errorf("Score = %v, want the mean of the last 300 surprises %v", got, sum/300)
	}
}
