package evaluate

import (
	"math"
	"slices"
	"sort"
)

// AUC is the probability that a random positive scores above a random
// negative, ties counting one half. It returns NaN when a side is empty.
func AUC(neg, pos []float64) float64 {
	if len(neg) == 0 || len(pos) == 0 {
		return math.NaN()
	}
	sn := slices.Clone(neg)
	slices.Sort(sn)
	var sum float64
	for _, p := range pos {
		lo := sort.SearchFloat64s(sn, p)
		hi := sort.Search(len(sn), func(i int) bool { return sn[i] > p })
		sum += float64(lo) + 0.5*float64(hi-lo)
	}
	return sum / (float64(len(neg)) * float64(len(pos)))
}

// rateAbove returns the fraction of v strictly above thr.
func rateAbove(v []float64, thr float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	n := 0
	for _, x := range v {
		if x > thr {
			n++
		}
	}
	return float64(n) / float64(len(v))
}

// FPRAtTPR returns the false-alarm rate at the highest threshold that still
// detects at least tpr of the positives (alerting on score ≥ threshold).
func FPRAtTPR(neg, pos []float64, tpr float64) float64 {
	if len(neg) == 0 || len(pos) == 0 {
		return math.NaN()
	}
	sp := slices.Clone(pos)
	slices.Sort(sp)
	i := int(math.Floor((1-tpr)*float64(len(sp)) + 1e-9))
	i = min(max(i, 0), len(sp)-1)
	thr := sp[i]
	n := 0
	for _, v := range neg {
		if v >= thr {
			n++
		}
	}
	return float64(n) / float64(len(neg))
}

// median returns the median of v (NaN if empty).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
