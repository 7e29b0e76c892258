package pipeline

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// sampleWindow records a learning-stream window score for calibration. The
// score was computed before the event was learned, so it is held out.
func (img *image) sampleWindow(r stepResult) {
	if r.full {
		img.win.Cur.add(r.window)
	}
}

// sampleEnd records a learning-stream end-of-sequence score.
func (img *image) sampleEnd(seq *sequence) {
	if seq.acc.Len() >= minEndEvents {
		img.end.Cur.add(seq.acc.Score())
	}
}

// ready reports whether the baseline may graduate: it learned for
// learning_min_duration of event time, its counts converged
// (few new transitions, or a flat learning curve), it holds enough
// held-out window scores to place a threshold for the alert budget (at
// least 1/rate of them, or the top score would be a guess), and its model
// still holds the events graduation needs: the rolling horizon may have
// taken a slow learner's early counts away (expireThin would send it
// straight back).
func (img *image) ready(cfg Config) bool {
	if img.learnTo.Sub(img.learnFrom) < cfg.LearningMinDuration {
		return false
	}
	return (img.conv.Converged() || img.plateaued()) && img.win.n() >= img.needWin &&
		img.model.Events() >= cfg.graduationFloor()
}

// graduate moves the image to monitoring with its window threshold
// calibrated on its own learning stream for the alert budget.
func (img *image) graduate(now time.Time, cfg Config) {
	img.state = scorer.StateMonitoring
	img.pairs = nil
	img.graduated = now
	img.threshold = onlineThreshold(cfg, img.win.threshold(cfg.AlertBudget/1e6))
	img.calibrateEnd(cfg)
	img.dirty = true
}

// onlineThreshold is the online threshold of a graduating image: the
// calibrated one, or the fixed CUSUM threshold when one is configured.
func onlineThreshold(cfg Config, calibrated float64) float64 {
	if cfg.Online == OnlineCusum && cfg.CusumThreshold > 0 {
		return cfg.CusumThreshold
	}
	return calibrated
}

// calibrateEnd sets the end-of-sequence threshold once enough finished
// normal sequences were seen (1/rate of them); until then whole-sequence
// verdicts stay off and finished sequences that raised no alarm keep
// feeding the sample.
func (img *image) calibrateEnd(cfg Config) {
	if img.end.n() >= img.needEnd {
		img.endThreshold = img.end.threshold(cfg.EndAlertRate)
	}
}

func (img *image) endCalibrated() bool { return !math.IsInf(img.endThreshold, 1) }

func (img *image) endScore(seq *sequence) float64 { return seq.acc.Score() }

// topK keeps the K highest scores of a stream and how many there were: all
// a threshold for a small alert rate needs, in constant space.
type topK struct {
	N   uint64    `json:"n"`
	Top []float64 `json:"top"` // descending
}

const topKSize = 64

func (t *topK) add(x float64) {
	t.N++
	if len(t.Top) == topKSize && x <= t.Top[topKSize-1] {
		return
	}
	i, _ := slices.BinarySearchFunc(t.Top, x, func(a, b float64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	t.Top = slices.Insert(t.Top, i, x)
	if len(t.Top) > topKSize {
		t.Top = t.Top[:topKSize]
	}
}

// calib holds the calibration sample of two consecutive spans of learning
// blocks: the threshold comes from both, and each rotation forgets the older.
type calib struct {
	Prev topK `json:"prev"`
	Cur  topK `json:"cur"`
}

// rotate starts a new span. The older span is forgotten only when the
// newer one alone holds the need values a threshold requires; otherwise
// the two are merged, so a scarce sample (finished processes, or a small
// learning_block_events) keeps growing from the start of learning.
func (c *calib) rotate(need uint64) {
	if c.Cur.N >= need {
		c.Prev, c.Cur = c.Cur, topK{}
		return
	}
	c.Prev = c.merged()
	c.Cur = topK{}
}

func (c *calib) merged() topK {
	all := topK{N: c.n()}
	all.Top = append(append(all.Top, c.Prev.Top...), c.Cur.Top...)
	slices.SortFunc(all.Top, func(a, b float64) int { return cmp.Compare(b, a) })
	if len(all.Top) > topKSize {
		all.Top = all.Top[:topKSize]
	}
	return all
}

func (c *calib) n() uint64 { return c.Prev.N + c.Cur.N }

func (c *calib) threshold(rate float64) float64 {
	all := c.merged()
	return all.threshold(rate)
}

// threshold returns the score that a fraction rate of the stream is
// expected to exceed. Where the kept top values reach that rank, it is the
// empirical quantile; for rarer rates (an alert budget of a few per million
// events, calibrated on tens of thousands) it extrapolates with a
// peaks-over-threshold fit: above the lowest kept value u, exceedances of a
// light-tailed score are close to exponential, with mean excess β, so the
// score exceeded at rate r is u + β·ln(p_u/r), p_u being the fraction of the
// stream above u. That is far less noisy than taking the second-highest
// value seen. Without values it returns +Inf (never alert).
func (t *topK) threshold(rate float64) float64 {
	n := len(t.Top)
	if n == 0 || t.N == 0 {
		return math.Inf(1)
	}
	k := int(rate * float64(t.N))
	if n < topKSize || k >= n-1 {
		// Few values, or a rate the kept values resolve: empirical.
		return t.Top[min(k, n-1)]
	}
	u := t.Top[n-1]
	var excess float64
	for _, v := range t.Top[:n-1] {
		excess += v - u
	}
	beta := excess / float64(n-1)
	pu := float64(n-1) / float64(t.N)
	return u + beta*math.Log(pu/rate)
}
