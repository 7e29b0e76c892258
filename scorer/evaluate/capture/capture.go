package capture

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
)

// Budgets are the false-alarm budgets reported: the share of normal test
// processes allowed to alert.
var Budgets = []float64{0.001, 0.01}

// Report is what eval prints for a capture.
type Report struct {
	Events      int `json:"events"`
	LearnEvents int `json:"learn_events"`
	TestEvents  int `json:"test_events"`
	BadLines    int `json:"bad_lines"`
	// LearnAlerted counts learning-phase processes (all normal) that
	// alerted once their image had graduated: false alarms the test-phase
	// figures do not include.
	LearnAlerted   int     `json:"learn_processes_alerted"`
	LearnProcesses int     `json:"learn_processes"`
	TestHours      float64 `json:"test_hours"` // length of the test phase, by event time
	// LearningMinDuration is the scorer's learning_min_duration in the run.
	LearningMinDuration time.Duration `json:"learning_min_duration"`
	Overall             Comparison    `json:"overall"`
	Images              []ImageReport `json:"images"`
	Scenarios           []Scenario    `json:"scenarios"`
}

// Comparison holds the sequence scorer's figures and a set-membership
// profile's, computed on the same events in the same run.
type Comparison struct {
	Scorer        Figures `json:"scorer"`
	SetMembership Figures `json:"set_membership"`
	// ScorerAtSetRate is the scorer's detection with its process threshold
	// set so that it alerts on as many normal processes as set membership
	// does: the like-for-like comparison.
	ScorerAtSetRate Budget `json:"scorer_at_set_membership_rate"`
}

// Figures describe one detector on the test phase.
type Figures struct {
	NormalProcesses int      `json:"normal_processes"`
	DriftProcesses  int      `json:"drift_processes"` // normal processes of labelled drift runs
	AttackProcesses int      `json:"attack_processes"`
	AttackRuns      int      `json:"attack_runs"`
	ProcessAUC      *float64 `json:"process_auc"` // ranking of attack vs normal processes; null without both
	// As deployed: the detector's own alerts.
	NormalAlerted       int      `json:"normal_alerted"`              // normal processes with an alert
	DriftAlerted        int      `json:"drift_alerted"`               // of them, in drift runs
	FalseAlarmRate      float64  `json:"false_alarm_rate"`            // NormalAlerted / NormalProcesses
	FalseAlerts         int      `json:"false_alerts"`                // alerts on normal processes (a process may raise several)
	FalseAlertsPerHour  float64  `json:"false_alerts_per_image_hour"` // FalseAlerts per image per hour of test
	AttackAlerted       int      `json:"attack_processes_alerted"`
	AttackAlerts        int      `json:"attack_alerts"` // alerts on attack processes: what one incident costs a reader
	RunsDetected        int      `json:"runs_detected"` // attack runs with an alert on any of their processes
	RunDetection        float64  `json:"run_detection"`
	MedianEventsToAlert *float64 `json:"median_events_to_first_alert"` // over detected runs, counting the run's events; null if none
	AtBudget            []Budget `json:"at_budget"`
	Learning            []string `json:"images_learning_at_test,omitempty"` // images not monitoring when the test phase began
}

// Budget is detection with the process-score threshold set from the normal
// test processes so that at most Budget of them alert (an oracle threshold:
// it measures ranking at an operating point, not calibration).
type Budget struct {
	Budget       float64 `json:"budget"`
	Threshold    float64 `json:"threshold"`
	NormalRate   float64 `json:"normal_rate"`
	ProcessTPR   float64 `json:"process_tpr"`
	RunsDetected int     `json:"runs_detected"`
	RunDetection float64 `json:"run_detection"`
}

// ImageReport is one image's figures.
type ImageReport struct {
	Image       string     `json:"image"`
	State       string     `json:"state_at_test"` // learning or monitoring when the test phase began
	Events      int        `json:"events"`
	ModelBytes  int        `json:"model_bytes"` // approximate memory of the image's model at the end
	Transitions int        `json:"transitions"`
	Comparison  Comparison `json:"figures"`
}

// Scenario is detection per attack scenario (as deployed).
type Scenario struct {
	Scenario  string `json:"scenario"`
	Runs      int    `json:"runs"`
	Scorer    int    `json:"scorer_detected"`
	SetMember int    `json:"set_membership_detected"`
}

// process is one process instance's record in the test phase.
type process struct {
	image      string
	run        *lab.Run // nil: normal
	events     int      // test-phase events
	score      float64  // the scorer's process score: max ratio to its thresholds
	alerted    bool
	alerts     int // the scorer's alerts on this process (window, subtree and end verdicts)
	firstAlert time.Time
	novel      int // symbols never seen for the image while learning
	firstNovel time.Time
	start      time.Time
}

type procKey struct {
	container string
	pid       int64
	gen       int
}

// collector receives the pipeline's decisions (workers call it in parallel).
type collector struct {
	mu           sync.Mutex
	labels       *lab.Labels
	procs        map[procKey]*process
	gen          map[[2]any]int             // (container, pid) → instance generation
	learned      map[string]map[string]bool // image → symbols seen while learning
	images       map[string]*imageState
	runEvents    map[*lab.Run][]time.Time // event times of each attack run
	learnEv      int
	testEv       int
	learnProc    map[procKey]bool  // learning-phase processes
	learnAlerted map[procKey]bool  // of them, alerted
	imageOf      map[string]string // container id → image key
}

type imageState struct {
	events      int
	bytes       int // the model's approximate memory, at the latest event
	transitions int
	stateAtTest string
	sawTest     bool
}

func (c *collector) onScored(s pipeline.Scored) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im := c.images[s.Image]
	if im == nil {
		im = &imageState{}
		c.images[s.Image] = im
	}
	im.events++
	if !s.End {
		im.bytes, im.transitions = s.ModelBytes, s.Transitions
	}
	c.imageOf[s.ContainerID] = s.Image
	gk := [2]any{s.ContainerID, s.PID}
	key := procKey{s.ContainerID, s.PID, c.gen[gk]}
	if s.End {
		defer func() { c.gen[gk]++ }() // a pid reused later is another process
	}
	test := !s.Time.Before(c.labels.TestStart)
	if !test {
		c.learnEv++
		c.learnProc[key] = true
		if s.Alerted {
			c.learnAlerted[key] = true
		}
		if s.Symbol != "" {
			set := c.learned[s.Image]
			if set == nil {
				set = map[string]bool{}
				c.learned[s.Image] = set
			}
			set[s.Symbol] = true
		}
		return
	}
	c.testEv++
	if !im.sawTest {
		im.sawTest = true
		im.stateAtTest = scorer.StateMonitoring
		if s.Learning {
			im.stateAtTest = scorer.StateLearning
		}
	}
	p := c.procs[key]
	if p == nil {
		p = &process{image: s.Image, start: s.Time, run: c.labels.Lookup(s.ContainerID, int(s.PID), s.Time)}
		c.procs[key] = p
	}
	if p.run != nil && p.run.Kind == lab.KindAttack && !s.End {
		c.runEvents[p.run] = append(c.runEvents[p.run], s.Time)
	}
	if !s.End {
		p.events++
		if s.Symbol != "" && !c.learned[s.Image][s.Symbol] {
			if p.novel == 0 {
				p.firstNovel = s.Time
			}
			p.novel++
		}
		if !s.Learning && !math.IsInf(s.Threshold, 1) && s.Threshold > 0 {
			p.score = max(p.score, s.Window/s.Threshold)
		}
	} else if !s.Learning && !math.IsInf(s.EndThreshold, 1) && s.EndThreshold > 0 && s.EndJudged {
		p.score = max(p.score, s.EndScore/s.EndThreshold)
	}
	if s.Alerted {
		p.alerts++
		if !p.alerted {
			p.alerted, p.firstAlert = true, s.Time
		}
	}
}

// LearnAsLabelled makes the scorer learn from the labelled learning phase,
// as the set-membership profile does: unless cfg already sets one,
// learning_min_duration becomes 90 % of that phase (the lab's stand-in for
// the period of an image's slowest routine), so a baseline that converges
// early does not meet the phase's rarer routines first in monitoring.
func LearnAsLabelled(cfg *pipeline.Config, labels *lab.Labels) {
	if cfg.LearningMinDuration == 0 {
		cfg.LearningMinDuration = (labels.LearningPhase() * 9 / 10).Round(time.Second)
	}
}

// Run replays capture (NDJSON Falco events, learning phase then test
// phase) through the service's own pipeline with cfg and reports detection
// against labels, beside a set-membership profile learned from the same
// learning phase.
func Run(ctx context.Context, cfg pipeline.Config, capture io.Reader, labels *lab.Labels, log zerolog.Logger) (*Report, error) {
	c := &collector{
		labels: labels, procs: map[procKey]*process{}, gen: map[[2]any]int{},
		learned: map[string]map[string]bool{}, images: map[string]*imageState{},
		runEvents: map[*lab.Run][]time.Time{}, imageOf: map[string]string{},
		learnProc: map[procKey]bool{}, learnAlerted: map[procKey]bool{},
	}
	r := &Report{LearningMinDuration: cfg.LearningMinDuration}
	p, err := pipeline.New(cfg, pipeline.Deps{Journal: nopJournal{}, OnScored: c.onScored}, log, nil)
	if err != nil {
		return nil, fmt.Errorf("capture eval: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		stop()
		return nil, fmt.Errorf("capture eval: pipeline: %w", err)
	}
	feedErr := feed(ctx, capture, p, r)
	stop() // drains every accepted event
	if err := <-done; err != nil {
		return nil, fmt.Errorf("capture eval: pipeline: %w", err)
	}
	if feedErr != nil {
		return nil, feedErr
	}
	c.report(r)
	return r, nil
}

// feed decodes the capture line by line and hands batches to the pipeline.
func feed(ctx context.Context, in io.Reader, p *pipeline.Pipeline, r *Report) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 8<<20)
	batch := make([]scorer.Event, 0, 256)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.AcceptUnjournaled(ctx, "capture", batch)
		batch = make([]scorer.Event, 0, 256)
		return err
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		ev, err := scorer.DecodeJSON(slices.Clone(line))
		if err != nil {
			r.BadLines++
			continue
		}
		r.Events++
		batch = append(batch, ev)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return fmt.Errorf("capture eval: %w", err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("capture eval: read capture: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("capture eval: %w", err)
	}
	return nil
}

// nopJournal: replayed events are not journaled, and the alerts the
// pipeline commits are observed through OnScored instead of an outbox.
type nopJournal struct{}

func (nopJournal) Append(context.Context, [][]byte) ([]uint64, error) {
	return nil, errors.New("capture eval: nothing is journaled")
}
func (nopJournal) Complete([]uint64, []scorer.OutboxPut) error { return nil }
func (nopJournal) Replay(func(uint64, []byte) error) error     { return nil }

func (c *collector) report(r *Report) {
	r.LearnEvents, r.TestEvents = c.learnEv, c.testEv
	r.LearnProcesses, r.LearnAlerted = len(c.learnProc), len(c.learnAlerted)
	r.TestHours = c.labels.End.Sub(c.labels.TestStart).Hours()
	var imgs []string
	for k := range c.images {
		imgs = append(imgs, k)
	}
	sort.Strings(imgs)
	all := c.compare("", r.TestHours, len(imgs))
	r.Overall = all
	for _, im := range imgs {
		st := c.images[im]
		r.Images = append(r.Images, ImageReport{Image: im, State: st.stateAtTest, Events: st.events,
			ModelBytes: st.bytes, Transitions: st.transitions,
			Comparison: c.compare(im, r.TestHours, 1)})
	}
	for im, st := range c.images {
		if st.stateAtTest == scorer.StateLearning {
			r.Overall.Scorer.Learning = append(r.Overall.Scorer.Learning, im)
		}
	}
	sort.Strings(r.Overall.Scorer.Learning)
	// Per scenario, as deployed.
	scen := map[string]*Scenario{}
	for i := range c.labels.Runs {
		run := &c.labels.Runs[i]
		if run.Kind != lab.KindAttack {
			continue
		}
		s := scen[run.Scenario]
		if s == nil {
			s = &Scenario{Scenario: run.Scenario}
			scen[run.Scenario] = s
		}
		s.Runs++
		sd, md := false, false
		for _, p := range c.procs {
			if p.run == run {
				sd = sd || p.alerted
				md = md || p.novel > 0
			}
		}
		if sd {
			s.Scorer++
		}
		if md {
			s.SetMember++
		}
	}
	for _, s := range scen {
		r.Scenarios = append(r.Scenarios, *s)
	}
	sort.Slice(r.Scenarios, func(i, j int) bool { return r.Scenarios[i].Scenario < r.Scenarios[j].Scenario })
}

// compare computes both detectors' figures over the processes of image
// (all images for "").
func (c *collector) compare(image string, hours float64, nImages int) Comparison {
	var procs []*process
	for _, p := range c.procs {
		if image == "" || p.image == image {
			procs = append(procs, p)
		}
	}
	runs := map[*lab.Run]bool{}
	for i := range c.labels.Runs {
		run := &c.labels.Runs[i]
		if run.Kind == lab.KindAttack && (image == "" || c.imageOf[run.ContainerID] == image) {
			runs[run] = true
		}
	}
	scorerOf := func(p *process) verdict { return verdict{p.score, p.alerted, p.firstAlert, p.alerts} }
	// Set membership alerts once per process, on its first never-seen
	// symbol (profiles that alert per novel item would count more).
	setOf := func(p *process) verdict {
		v := verdict{score: float64(p.novel), alerted: p.novel > 0, first: p.firstNovel}
		if v.alerted {
			v.alerts = 1
		}
		return v
	}
	cmp := Comparison{
		Scorer:        c.figures(procs, runs, hours, nImages, scorerOf),
		SetMembership: c.figures(procs, runs, hours, nImages, setOf),
	}
	cmp.ScorerAtSetRate = atRate(procs, runs, cmp.SetMembership.FalseAlarmRate, scorerOf)
	return cmp
}

// verdict is one detector's view of one process.
type verdict struct {
	score   float64   // ranks processes (higher: more anomalous)
	alerted bool      // the detector as deployed alerted on it
	first   time.Time // its first alert
	alerts  int       // how many alerts it raised
}

type detector func(p *process) verdict

func (c *collector) figures(procs []*process, runs map[*lab.Run]bool, hours float64, nImages int, det detector) Figures {
	var f Figures
	var neg, pos []float64
	detected := map[*lab.Run]time.Time{}
	for _, p := range procs {
		v := det(p)
		attack := p.run != nil && p.run.Kind == lab.KindAttack
		if attack {
			if !runs[p.run] {
				continue
			}
			f.AttackProcesses++
			pos = append(pos, v.score)
			if v.alerted {
				f.AttackAlerted++
				f.AttackAlerts += v.alerts
				if t, ok := detected[p.run]; !ok || v.first.Before(t) {
					detected[p.run] = v.first
				}
			}
			continue
		}
		f.NormalProcesses++
		neg = append(neg, v.score)
		drift := p.run != nil && p.run.Kind == lab.KindDrift
		if drift {
			f.DriftProcesses++
		}
		if v.alerted {
			f.NormalAlerted++
			f.FalseAlerts += v.alerts
			if drift {
				f.DriftAlerted++
			}
		}
	}
	f.AttackRuns = len(runs)
	f.ProcessAUC = defined(evaluate.AUC(neg, pos))
	if f.NormalProcesses > 0 {
		f.FalseAlarmRate = float64(f.NormalAlerted) / float64(f.NormalProcesses)
	}
	if hours > 0 && nImages > 0 {
		f.FalseAlertsPerHour = float64(f.FalseAlerts) / hours / float64(nImages)
	}
	f.RunsDetected = len(detected)
	if f.AttackRuns > 0 {
		f.RunDetection = float64(f.RunsDetected) / float64(f.AttackRuns)
	}
	var toAlert []float64
	for run, first := range detected {
		n := 0
		for _, t := range c.runEvents[run] {
			if !t.After(first) {
				n++
			}
		}
		toAlert = append(toAlert, float64(n))
	}
	f.MedianEventsToAlert = defined(median(toAlert))
	for _, b := range Budgets {
		f.AtBudget = append(f.AtBudget, atRate(procs, runs, b, det))
	}
	return f
}

// atRate sets the process-score threshold at the (1-rate) quantile of the
// normal processes' scores and reports detection there.
func atRate(procs []*process, runs map[*lab.Run]bool, rate float64, det detector) Budget {
	var neg []float64
	for _, p := range procs {
		if p.run == nil || p.run.Kind != lab.KindAttack {
			neg = append(neg, det(p).score)
		}
	}
	b := Budget{Budget: rate}
	if len(neg) == 0 {
		return b
	}
	slices.Sort(neg)
	// Alert on score > thr; the largest thr with at most rate·n normal above.
	allowed := int(math.Floor(rate * float64(len(neg))))
	thr := neg[len(neg)-1-min(allowed, len(neg)-1)]
	if allowed >= len(neg) {
		thr = math.Inf(-1)
	}
	b.Threshold = thr
	above := 0
	for _, v := range neg {
		if v > thr {
			above++
		}
	}
	b.NormalRate = float64(above) / float64(len(neg))
	hit, total := 0, 0
	detected := map[*lab.Run]bool{}
	for _, p := range procs {
		if p.run == nil || p.run.Kind != lab.KindAttack || !runs[p.run] {
			continue
		}
		total++
		if det(p).score > thr {
			hit++
			detected[p.run] = true
		}
	}
	if total > 0 {
		b.ProcessTPR = float64(hit) / float64(total)
	}
	b.RunsDetected = len(detected)
	if len(runs) > 0 {
		b.RunDetection = float64(b.RunsDetected) / float64(len(runs))
	}
	return b
}

// defined is nil for NaN (JSON has no NaN: undefined figures are null).
func defined(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// gunzip decompresses a gzip stream and passes anything else through.
func gunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}
