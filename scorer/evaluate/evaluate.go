package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// Config is the evaluation setup: the model and the aggregations, exactly
// as the service would use them, plus how calibration holds data out.
type Config struct {
	Model markov.Config `yaml:"model"`
	// SequenceScore is the end-of-sequence score: SequenceMean (the mean
	// per-event surprise, the service's) or SequenceExcessBand (the former
	// score, kept to measure it).
	SequenceScore string `yaml:"sequence_score"`
	// BandLow and BandHigh bound the quantile band of per-event excess
	// surprise whose mean is the SequenceExcessBand score.
	BandLow      float64 `yaml:"band_low"`
	BandHigh     float64 `yaml:"band_high"`
	WindowLength int     `yaml:"window_length"`
	// WindowWarmup is the number of events (at most WindowLength) after
	// which a sequence's window, growing until WindowLength, may alert.
	WindowWarmup int `yaml:"window_warmup"`
	// Hysteresis re-arms an online alarm once the window score falls below
	// Hysteresis × threshold.
	Hysteresis float64 `yaml:"hysteresis"`
	// Folds is the number of calibration folds: each training sequence is
	// scored by a model trained on the other folds, never on itself.
	Folds int `yaml:"folds"`
}

// Sequence scores.
const (
	SequenceMean       = "mean-surprise"
	SequenceExcessBand = "excess-band"
)

// DefaultConfig returns the measured defaults.
func DefaultConfig() Config {
	return Config{
		Model:         markov.DefaultConfig(),
		SequenceScore: SequenceMean,
		BandLow:       markov.DefaultBandLow,
		BandHigh:      markov.DefaultBandHigh,
		WindowLength:  markov.DefaultWindowLength,
		WindowWarmup:  markov.DefaultWindowWarmup,
		Hysteresis:    0.8,
		Folds:         2,
	}
}

// Validate reports invalid fields.
func (c Config) Validate() error {
	var errs []error
	if err := c.Model.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("model.%w", err))
	}
	if c.SequenceScore != SequenceMean && c.SequenceScore != SequenceExcessBand {
		errs = append(errs, fmt.Errorf("sequence_score: %q not %q or %q", c.SequenceScore, SequenceMean, SequenceExcessBand))
	}
	if !(c.BandLow >= 0 && c.BandLow < c.BandHigh && c.BandHigh <= 1) {
		errs = append(errs, fmt.Errorf("band_low, band_high: [%v,%v] not a band in [0,1]", c.BandLow, c.BandHigh))
	}
	if c.WindowLength < 1 || c.WindowLength > markov.MaxWindowLength {
		errs = append(errs, fmt.Errorf("window_length: %d not in [1,%d]", c.WindowLength, markov.MaxWindowLength))
	}
	if c.WindowWarmup < 1 || c.WindowWarmup > markov.MaxWindowLength {
		errs = append(errs, fmt.Errorf("window_warmup: %d not in [1,%d]", c.WindowWarmup, markov.MaxWindowLength))
	}
	if !(c.Hysteresis > 0 && c.Hysteresis <= 1) {
		errs = append(errs, fmt.Errorf("hysteresis: %v not in (0,1]", c.Hysteresis))
	}
	if c.Folds < 2 || c.Folds > 20 {
		errs = append(errs, fmt.Errorf("folds: %d not in [2,20]", c.Folds))
	}
	return errors.Join(errs...)
}

// Rates are the false-alarm rates reported; their keys in JSON.
var Rates = []float64{0.01, 0.05, 0.10}

// CalibrationTargets are the target rates of the calibrated section.
var CalibrationTargets = []float64{0.01, 0.05}

func rateKey(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) }

// Report is the evaluation result; its JSON is eval's output.
type Report struct {
	Sequence   SequenceReport               `json:"sequence"`
	Online     OnlineReport                 `json:"online"`
	Calibrated map[string]CalibrationReport `json:"calibrated"`
	// SetMembership is the set-membership baselines on the same split.
	SetMembership []SetMembershipReport `json:"set_membership"`
	Counts        Counts                `json:"counts"`
	Config        ReportConfig          `json:"config"`
}

// SequenceReport rates the end-of-sequence score.
type SequenceReport struct {
	AUC       float64            `json:"auc"`
	TPRAtFPR  map[string]float64 `json:"tpr_at_fpr"`
	FPRAtTPR  float64            `json:"fpr_at_tpr90"`
	PerFamily map[string]float64 `json:"per_family"`
}

// OnlineReport rates the window score. A sequence's online score is the
// highest window score it reaches.
type OnlineReport struct {
	AUC      float64            `json:"auc"`
	TPRAtFPR map[string]float64 `json:"tpr_at_fpr"`
	// AlertsPerMillion counts rising-edge alerts (with hysteresis) on the
	// normal sequences at the threshold calibrated on training data for
	// OnlineTarget, per million normal events.
	AlertsPerMillion float64 `json:"alerts_per_million_normal_events"`
	// EventsToFirstAlertP50 is the median number of events an attack
	// sequence runs before its first alert, at the same threshold, over the
	// attack sequences that alert.
	EventsToFirstAlertP50 float64 `json:"events_to_first_alert_p50"`
	OnlineTarget          float64 `json:"calibration_target"`
	Threshold             float64 `json:"threshold"`
	DetectedAttacks       float64 `json:"detected_attacks"`
}

// CalibrationReport is one target false-alarm rate with thresholds learned
// from the training data alone.
type CalibrationReport struct {
	Threshold       float64 `json:"threshold"`
	FPR             float64 `json:"fpr"`
	TPR             float64 `json:"tpr"`
	OnlineThreshold float64 `json:"online_threshold"`
	OnlineFPR       float64 `json:"online_fpr"`
	OnlineTPR       float64 `json:"online_tpr"`
}

// Counts sizes the data.
type Counts struct {
	TrainSequences  int            `json:"train_sequences"`
	TrainEvents     int            `json:"train_events"`
	NormalSequences int            `json:"normal_sequences"`
	NormalEvents    int            `json:"normal_events"`
	AttackSequences int            `json:"attack_sequences"`
	AttackEvents    int            `json:"attack_events"`
	AttackFamilies  map[string]int `json:"attack_families"`
	Transitions     int            `json:"model_transitions"`
	Symbols         int            `json:"model_symbols"`
	NormalBits      float64        `json:"normal_bits_per_event"`
}

// ReportConfig echoes the settings measured.
type ReportConfig struct {
	Order         int     `json:"order"`
	SequenceScore string  `json:"sequence_score"`
	Smoothing     string  `json:"smoothing"`
	BandLow       float64 `json:"band_low"`
	BandHigh      float64 `json:"band_high"`
	WindowLength  int     `json:"window_length"`
	WindowWarmup  int     `json:"window_warmup"`
	Folds         int     `json:"folds"`
}

// scored is one sequence seen through the model.
type scored struct {
	seq    float64   // end-of-sequence score
	online float64   // highest window score
	wins   []float32 // window score after each event (for alarms)
	bits   float64   // total surprise
	events int
}

// Run trains on train, calibrates on held-out folds of train, and scores
// normal and attack. It stops early with ctx's error if ctx is cancelled.
func Run(ctx context.Context, cfg Config, train, normal, attack []Trace) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, fmt.Errorf("evaluate config: %w", err)
	}
	if len(train) < cfg.Folds || len(normal) == 0 || len(attack) == 0 {
		return Report{}, errors.New("evaluate: need at least Folds training, one normal and one attack sequence")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))

	// Calibration sample: every training sequence scored by the model of
	// the other folds.
	held := make([]scored, len(train))
	for f := 0; f < cfg.Folds; f++ {
		g.Go(func() error {
			var rest []Trace
			for i, t := range train {
				if foldOf(i, len(train), cfg.Folds) != f {
					rest = append(rest, t)
				}
			}
			m, err := trainModel(cfg.Model, rest)
			if err != nil {
				return err
			}
			for i, t := range train {
				if foldOf(i, len(train), cfg.Folds) == f {
					if err := gctx.Err(); err != nil {
						return err
					}
					held[i] = scoreTrace(m, cfg, t, false)
				}
			}
			return nil
		})
	}
	var full *markov.Model
	g.Go(func() error {
		var err error
		full, err = trainModel(cfg.Model, train)
		return err
	})
	if err := g.Wait(); err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}

	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	ns := make([]scored, len(normal))
	as := make([]scored, len(attack))
	// Each goroutine scores with its own decoded copy of the model, so the
	// two cores do not share the model's lock.
	enc, err := full.MarshalBinary()
	if err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	workers := runtime.GOMAXPROCS(0)
	all := append(append([]Trace{}, normal...), attack...)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			m, err := markov.Unmarshal(enc)
			if err != nil {
				return err
			}
			for i := w; i < len(all); i += workers {
				if i%64 == 0 {
					if err := gctx.Err(); err != nil {
						return err
					}
				}
				s := scoreTrace(m, cfg, all[i], true)
				if i < len(normal) {
					ns[i] = s
				} else {
					as[i-len(normal)] = s
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Report{}, fmt.Errorf("evaluate: %w", err)
	}
	return report(cfg, full, train, normal, attack, held, ns, as), nil
}

func trainModel(cfg markov.Config, traces []Trace) (*markov.Model, error) {
	m, err := markov.New(cfg)
	if err != nil {
		return nil, err
	}
	for _, t := range traces {
		var h markov.History
		for _, c := range t.Calls {
			s := m.Intern(c)
			m.Learn(&h, s)
			h.Push(s)
		}
	}
	m.TakeDelta() // eval keeps no deltas
	return m, nil
}

// scoreTrace runs one sequence through the per-event, sequence and window
// scorers, as the pipeline does.
func scoreTrace(m *markov.Model, cfg Config, t Trace, keepWins bool) scored {
	var h markov.History
	seq := markov.NewMeanSequence()
	if cfg.SequenceScore == SequenceExcessBand {
		seq = markov.NewExcessBandSequence(cfg.BandLow, cfg.BandHigh)
	}
	w, _ := markov.NewWarmWindow(cfg.WindowLength, cfg.WindowWarmup) // validated by Config
	out := scored{online: math.Inf(-1), events: len(t.Calls)}
	if keepWins {
		out.wins = make([]float32, len(t.Calls))
	}
	for i, c := range t.Calls {
		s := m.Lookup(c)
		st := m.Score(&h, s)
		seq.Add(st)
		ws := w.Push(s, st)
		out.bits += st.Surprise
		// Sequences shorter than the warm-up are judged on their window at
		// the end.
		if w.Ready() || i == len(t.Calls)-1 {
			out.online = math.Max(out.online, ws)
		}
		if keepWins {
			if w.Ready() || i == len(t.Calls)-1 {
				out.wins[i] = float32(ws)
			} else {
				out.wins[i] = float32(math.Inf(-1))
			}
		}
		h.Push(s)
	}
	out.seq = seq.Score()
	return out
}

func report(cfg Config, m *markov.Model, train, normal, attack []Trace, held, ns, as []scored) Report {
	pick := func(v []scored, f func(scored) float64) []float64 {
		out := make([]float64, len(v))
		for i, s := range v {
			out[i] = f(s)
		}
		return out
	}
	seqOf := func(s scored) float64 { return s.seq }
	onOf := func(s scored) float64 { return s.online }
	nSeq, aSeq, hSeq := pick(ns, seqOf), pick(as, seqOf), pick(held, seqOf)
	nOn, aOn, hOn := pick(ns, onOf), pick(as, onOf), pick(held, onOf)

	var r Report
	r.Sequence = SequenceReport{
		AUC: AUC(nSeq, aSeq), TPRAtFPR: map[string]float64{}, FPRAtTPR: FPRAtTPR(nSeq, aSeq, 0.9),
		PerFamily: map[string]float64{},
	}
	r.Online = OnlineReport{AUC: AUC(nOn, aOn), TPRAtFPR: map[string]float64{}}
	for _, rate := range Rates {
		r.Sequence.TPRAtFPR[rateKey(rate)] = rateAbove(aSeq, markov.Threshold(nSeq, rate))
		r.Online.TPRAtFPR[rateKey(rate)] = rateAbove(aOn, markov.Threshold(nOn, rate))
	}
	fams := map[string][]float64{}
	r.Counts.AttackFamilies = map[string]int{}
	for i, t := range attack {
		fams[t.Family] = append(fams[t.Family], aSeq[i])
		r.Counts.AttackFamilies[t.Family]++
	}
	for f, v := range fams {
		r.Sequence.PerFamily[f] = AUC(nSeq, v)
	}
	r.Calibrated = map[string]CalibrationReport{}
	for _, rate := range CalibrationTargets {
		thr, othr := markov.Threshold(hSeq, rate), onlineThreshold(hOn, rate)
		r.Calibrated[rateKey(rate)] = CalibrationReport{
			Threshold: thr, FPR: rateAbove(nSeq, thr), TPR: rateAbove(aSeq, thr),
			OnlineThreshold: othr, OnlineFPR: rateAbove(nOn, othr), OnlineTPR: rateAbove(aOn, othr),
		}
	}
	// Online alerts at the calibrated 5 % threshold, with hysteresis.
	target := 0.05
	thr := onlineThreshold(hOn, target)
	alerts, normalEvents := 0, 0
	for _, s := range ns {
		alerts += countAlerts(s.wins, thr, cfg.Hysteresis*thr, nil)
		normalEvents += s.events
	}
	var first []float64
	for _, s := range as {
		var at int
		if countAlerts(s.wins, thr, cfg.Hysteresis*thr, &at) > 0 {
			first = append(first, float64(at))
		}
	}
	r.Online.OnlineTarget = target
	r.Online.Threshold = thr
	r.Online.AlertsPerMillion = float64(alerts) / math.Max(1, float64(normalEvents)) * 1e6
	r.Online.EventsToFirstAlertP50 = median(first)
	r.Online.DetectedAttacks = float64(len(first)) / float64(len(as))

	st := m.Stats()
	var bits float64
	for _, s := range ns {
		bits += s.bits
	}
	r.Counts.TrainSequences, r.Counts.TrainEvents = len(train), events(train)
	r.Counts.NormalSequences, r.Counts.NormalEvents = len(normal), normalEvents
	r.Counts.AttackSequences, r.Counts.AttackEvents = len(attack), events(attack)
	r.Counts.Transitions, r.Counts.Symbols = st.Transitions, st.Symbols
	r.Counts.NormalBits = bits / math.Max(1, float64(normalEvents))
	r.SetMembership = setMembership(train, normal, attack)
	r.Config = ReportConfig{Order: cfg.Model.Order, SequenceScore: cfg.SequenceScore, Smoothing: cfg.Model.Smoothing,
		BandLow: cfg.BandLow, BandHigh: cfg.BandHigh, WindowLength: cfg.WindowLength,
		WindowWarmup: cfg.WindowWarmup, Folds: cfg.Folds}
	return r
}

// onlineThreshold calibrates the online score on the held-out sample. A
// sequence's online score is a maximum over its windows, whose upper tail
// is close to exponential: the tail fit uses the top fifth of the sample
// rather than the two values next to the target rank, and carried over to
// the normal test sequences where the empirical quantile did not (see
// RESULTS.md). The end-of-sequence score is a trimmed mean, not a maximum,
// and keeps the empirical quantile.
func onlineThreshold(held []float64, rate float64) float64 {
	return markov.TailThreshold(held, rate, markov.DefaultTailFraction)
}

// countAlerts runs an Alarm over window scores; first receives the 1-based
// event index of the first alert.
func countAlerts(wins []float32, high, low float64, first *int) int {
	var a markov.Alarm
	n := 0
	for i, w := range wins {
		if a.Update(float64(w), high, low) {
			n++
			if n == 1 && first != nil {
				*first = i + 1
			}
		}
	}
	return n
}

func events(ts []Trace) int {
	n := 0
	for _, t := range ts {
		n += len(t.Calls)
	}
	return n
}

// Families returns the report's attack families, sorted.
func (r Report) Families() []string {
	out := make([]string, 0, len(r.Sequence.PerFamily))
	for f := range r.Sequence.PerFamily {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// foldOf puts sequence i of n in one of k contiguous blocks: held-out data
// then comes from another stretch of the stream, as in the service, rather
// than interleaved with (and near-duplicated by) the data the model learns.
func foldOf(i, n, k int) int { return i * k / n }
