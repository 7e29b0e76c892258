package markov

import (
	"math"
	"math/rand/v2"
	"testing"
)

// denseQuantile is the histogram as it was before the sparse form: the
// reference the sparse one must match exactly.
type denseQuantile struct {
	p    float64
	w    uint64
	bins [histBins]uint16
}

func (e *denseQuantile) add(x float64) {
	if x != x {
		return
	}
	i := min(max(int((x-histLow)/histBinWidth), 0), histBins-1)
	if e.bins[i] == 1<<16-1 {
		e.w = 0
		for j := range e.bins {
			e.bins[j] = (e.bins[j] + 1) / 2
			e.w += uint64(e.bins[j])
		}
	}
	e.bins[i]++
	e.w++
}

func (e *denseQuantile) value() float64 {
	if e.w == 0 {
		return 0
	}
	target := e.p * float64(e.w)
	var cum float64
	for i, c := range e.bins {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= target {
			return histLow + (float64(i)+(target-cum)/float64(c))*histBinWidth
		}
		cum += float64(c)
	}
	return histLow + histBins*histBinWidth
}

func (e *denseQuantile) bandMean(lo, hi float64) float64 {
	if e.w == 0 {
		return 0
	}
	a, b := lo*float64(e.w), hi*float64(e.w)
	var cum, sum, wt float64
	for i, c := range e.bins {
		if c == 0 {
			continue
		}
		from, to := cum, cum+float64(c)
		cum = to
		if to <= a {
			continue
		}
		if from >= b {
			break
		}
		in := min(to, b) - max(from, a)
		sum += in * (histLow + (float64(i)+0.5)*histBinWidth)
		wt += in
	}
	if wt == 0 {
		return e.value()
	}
	return sum / wt
}

// TestQuantileSparseMatchesDense: streams that stay within a few bins, that
// spread over many (going dense mid-stream), that overflow a bin (halving,
// sparse and dense) and that hold NaN give bit-identical estimates.
func TestQuantileSparseMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	streams := map[string]func(i int) float64{
		"few bins":          func(int) float64 { return float64(rng.IntN(6)) * histBinWidth },
		"many bins":         func(int) float64 { return rng.NormFloat64() * 4 },
		"grows wider":       func(i int) float64 { return float64(rng.IntN(1+i/50)) * histBinWidth },
		"out of range":      func(int) float64 { return []float64{-100, 100, 0.3, math.Inf(1), math.Inf(-1)}[rng.IntN(5)] },
		"with NaN":          func(int) float64 { return []float64{math.NaN(), 1, 2}[rng.IntN(3)] },
		"one bin overflows": func(int) float64 { return 1.01 },
	}
	for name, gen := range streams {
		t.Run(name, func(t *testing.T) {
			n := 3000
			if name == "one bin overflows" {
				n = 140000 // past 65535 in one bin twice: halving while sparse
			}
			q, ref := NewQuantile(0.65), denseQuantile{p: 0.65}
			for i := range n {
				x := gen(i)
				q.Add(x)
				ref.add(x)
				if i%97 == 0 || i == n-1 {
					if got, want := q.Value(), ref.value(); got != want {
						t.Fatalf("after %d values: Value %v, dense %v", i+1, got, want)
					}
					if got, want := q.BandMean(DefaultBandLow, DefaultBandHigh), ref.bandMean(DefaultBandLow, DefaultBandHigh); got != want {
						t.Fatalf("after %d values: BandMean %v, dense %v", i+1, got, want)
					}
				}
			}
			t.Logf("dense: %v, sparse bins: %d", q.dense != nil, q.nsp)
		})
	}
	// Halving once dense.
	q, ref := NewQuantile(0.5), denseQuantile{p: 0.5}
	for i := range 200000 {
		x := 1.01
		if i%10 == 0 {
			x = float64(i%400) * histBinWidth / 4 // 40 bins: dense
		}
		q.Add(x)
		ref.add(x)
	}
	if q.dense == nil || q.Value() != ref.value() || q.BandMean(0.2, 0.9) != ref.bandMean(0.2, 0.9) {
		t.Errorf("dense after halving: Value %v vs %v, BandMean %v vs %v", q.Value(), ref.value(), q.BandMean(0.2, 0.9), ref.bandMean(0.2, 0.9))
	}
}
