package pipeline

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// Sequence-key modes: what one syscall trace is.
const (
	SequenceByProcess   = "process"   // container id + process id (default): a process is a trace
	SequenceByContainer = "container" // one trace per container
)

// Config tunes the pipeline. Zero values are replaced by DefaultConfig's.
type Config struct {
	Workers        int    `yaml:"workers"`         // scoring goroutines; images are sharded across them
	QueueSize      int    `yaml:"queue_size"`      // events accepted but not yet scored, at most (beyond: 429)
	SequenceKey    string `yaml:"sequence_key"`    // "process" or "container"
	ImageKey       string `yaml:"image_key"`       // "digest", "tag" or "repository"
	ObservationTag string `yaml:"observation_tag"` // tag of the Falco rules falco-scorer ships

	Order  int `yaml:"order"`  // Markov order (history length + 1)
	Window int `yaml:"window"` // events in the online window score
	// WindowWarmup is the number of events of a sequence (at most Window)
	// after which its window score (the mean over all events so far until
	// Window are held) may alert and is sampled for calibration.
	WindowWarmup int `yaml:"window_warmup"`

	// Learning → monitoring: a baseline graduates once LearningBlocks
	// consecutive blocks of LearningBlockEvents learned events each met at
	// most NewTransitionRate unseen transitions per event.
	LearningBlockEvents uint64 `yaml:"learning_block_events"`
	LearningBlocks      int    `yaml:"learning_blocks"`
	// LearningMinDuration keeps a baseline learning for at least this
	// much event time, however early its counts converge: a routine that
	// runs less often than the baseline takes to converge (a maintenance
	// shell, a daily log rotation) is otherwise met first in monitoring,
	// where it alerts, and an alerted process is never learned. Set it to
	// the period of the image's slowest routine (24h for a daily job);
	// 0 graduates on convergence alone.
	LearningMinDuration time.Duration `yaml:"learning_min_duration"`
	NewTransitionRate   float64       `yaml:"new_transition_rate"`
	// AlertBudget is the target of false online alerts per million normal
	// events; each image's window threshold is calibrated to it.
	AlertBudget float64 `yaml:"alert_budget_per_million"`
	// EndAlertRate is the target fraction of normal sequences whose
	// end-of-sequence score alerts.
	EndAlertRate float64 `yaml:"end_alert_rate"`

	MaxSequences   int           `yaml:"max_sequences"`   // live sequences kept, across workers (oldest evicted)
	SequenceIdle   time.Duration `yaml:"sequence_idle"`   // a sequence idle this long is closed
	MaxImages      int           `yaml:"max_images"`      // images with a live model (least recently seen evicted from memory)
	FlushInterval  time.Duration `yaml:"flush_interval"`  // how often learned counts reach the store
	Horizon        time.Duration `yaml:"horizon"`         // rolling window of behaviour that counts as normal
	BucketSize     time.Duration `yaml:"bucket_size"`     // granularity of the rolling horizon
	CommitBatch    int           `yaml:"commit_batch"`    // events per journal→outbox commit, at most
	CommitDelay    time.Duration `yaml:"commit_delay"`    // how long scored events may wait for more before their commit (0: commit whenever the queue empties)
	ContainerCache int           `yaml:"container_cache"` // container id → image entries remembered
	MaxVocabulary  int           `yaml:"max_vocabulary"`  // distinct symbols per image; more map to out-of-vocabulary

	// Online is the online score: "cusum" (default: accumulated surprise
	// above cusum_allowance bits per event, judged from a sequence's first
	// event) or "window" (mean surprise over the last window events, after
	// window_warmup of them; suited to dense traces of every system call).
	Online         string  `yaml:"online"`
	CusumAllowance float64 `yaml:"cusum_allowance"` // bits; an event rarer than 1 in 2^allowance raises the score
	CusumCap       float64 `yaml:"cusum_cap"`       // bits; the most one event adds before the allowance
	// CusumThreshold fixes the online threshold, in bits of accumulated
	// surprise; 0 calibrates it per image for alert_budget_per_million.
	CusumThreshold float64 `yaml:"cusum_threshold"`
	// TreeEvidence (with sequence_key: process): an event also counts in
	// the online score of each live ancestor of its process (in the same
	// image), and is judged by the highest of them. An attack's shell
	// spawns children that each exec one never-seen tool and exit — two
	// or three events, too few to raise a score of their own; their
	// ancestor accumulates all of them.
	TreeEvidence bool `yaml:"tree_evidence"`

	// Symbols sets how an observation becomes the symbol the model counts.
	Symbols symbol.Config `yaml:"symbols"`

	// RecentAnomaly is how long after an anomalous verdict in a container
	// (a window alarm or an anomalous end of process) a Falco alert from
	// that container is raised as following it.
	RecentAnomaly time.Duration `yaml:"recent_anomaly"`

	// RepeatInterval folds repeats: an alarm of a process on the same
	// step it already alerted on within this much event time raises no new
	// alert (a rolled-out worker calling a new endpoint at every request
	// is one finding, not one a request). A different step alerts; 0
	// alerts on every alarm.
	RepeatInterval time.Duration `yaml:"repeat_interval"`
}

// DefaultOrder is the pipeline's Markov order, chosen on the recorded lab
// of argument-aware Falco observations (scorer/evaluate/RESULTS.md): order 6
// detected as many attack runs as 8 with fewer false alarms (a long history
// makes a familiar context so rigid that benign drift in it costs tens of
// bits), and more than 2 to 5. markov.DefaultConfig's order is the one
// chosen on ADFA-LD's dense traces of every system call.
const DefaultOrder = 6

// DefaultConfig returns the configuration used when no file says otherwise.
func DefaultConfig() Config {
	return Config{
		Workers:             runtime.GOMAXPROCS(0),
		QueueSize:           16384,
		SequenceKey:         SequenceByProcess,
		ImageKey:            scorer.ImageKeyDigest,
		ObservationTag:      "falco_scorer",
		Order:               DefaultOrder,
		Window:              markov.DefaultWindowLength,
		WindowWarmup:        markov.DefaultWindowWarmup,
		LearningBlockEvents: 500,
		LearningBlocks:      3,
		NewTransitionRate:   0.002,
		AlertBudget:         50,
		EndAlertRate:        0.01,
		MaxSequences:        200000,
		SequenceIdle:        10 * time.Minute,
		MaxImages:           20000,
		FlushInterval:       5 * time.Second,
		Horizon:             7 * 24 * time.Hour,
		BucketSize:          time.Hour,
		CommitBatch:         512,
		CommitDelay:         2 * time.Millisecond,
		ContainerCache:      100000,
		MaxVocabulary:       512,
		Online:              OnlineCusum,
		CusumAllowance:      markov.DefaultCusumAllowance,
		CusumCap:            markov.DefaultCusumCap,
		CusumThreshold:      markov.DefaultCusumThreshold,
		TreeEvidence:        true,
		Symbols:             symbol.DefaultConfig(),
		RecentAnomaly:       recentAnomaly,
		RepeatInterval:      recentAnomaly,
	}
}

// Online scores.
const (
	OnlineCusum  = "cusum"
	OnlineWindow = "window"
)

// cusumAllowance is the CUSUM allowance, or 0 when the online score is the
// window mean.
func (c Config) cusumAllowance() float64 {
	if c.Online == OnlineCusum {
		return c.CusumAllowance
	}
	return 0
}

// calibrationSamples is how many held-out online scores an image collects
// before its threshold is placed: 1/budget of them, so that the threshold
// is an empirical quantile, but at most the events of one convergence span
// (learning_blocks × learning_block_events): a quiet image would otherwise
// learn for days (20,000 events at the default budget). Below 1/budget the
// threshold is extrapolated from the highest scores (a peaks-over-threshold
// fit, see topK.threshold).
func (c Config) calibrationSamples() uint64 {
	need := uint64(math.Ceil(1e6 / c.AlertBudget))
	return max(min(need, c.graduationFloor()), 1)
}

// bucketStart is the start of the bucket holding t.
func (c Config) bucketStart(t time.Time) time.Time { return t.Truncate(c.BucketSize) }

// horizonStart is the start of the oldest bucket that the rolling horizon
// still holds at now.
func (c Config) horizonStart(now time.Time) time.Time {
	return now.Add(-c.Horizon).Truncate(c.BucketSize)
}

// graduationFloor is the fewest events an image learns before it may
// graduate (its convergence streak spans learning_blocks blocks). A
// monitoring baseline whose rolling horizon holds fewer goes back to
// learning.
func (c Config) graduationFloor() uint64 {
	return uint64(max(c.LearningBlocks, 0)) * c.LearningBlockEvents
}

// Validate checks the configuration; errors name the field.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Workers > 0 && c.Workers <= 256, "workers: %d out of range 1..256", c.Workers)
	check(c.QueueSize > 0, "queue_size: must be positive")
	check(c.SequenceKey == SequenceByProcess || c.SequenceKey == SequenceByContainer,
		"sequence_key: %q, want %q or %q", c.SequenceKey, SequenceByProcess, SequenceByContainer)
	check(c.ImageKey == scorer.ImageKeyDigest || c.ImageKey == scorer.ImageKeyTag || c.ImageKey == scorer.ImageKeyRepository,
		"image_key: %q, want digest, tag or repository", c.ImageKey)
	check(c.ObservationTag != "", "observation_tag: empty")
	check(c.Order >= 1 && c.Order <= markov.MaxOrder, "order: %d out of range 1..%d", c.Order, markov.MaxOrder)
	check(c.Window >= 1 && c.Window <= markov.MaxWindowLength, "window: %d out of range 1..%d", c.Window, markov.MaxWindowLength)
	check(c.WindowWarmup >= 1 && c.WindowWarmup <= markov.MaxWindowLength, "window_warmup: %d out of range 1..%d", c.WindowWarmup, markov.MaxWindowLength)
	check(c.NewTransitionRate > 0 && c.NewTransitionRate < 1, "new_transition_rate: %g out of range (0,1)", c.NewTransitionRate)
	check(c.AlertBudget > 0 && c.AlertBudget < 1e6, "alert_budget_per_million: %g out of range (0,1e6)", c.AlertBudget)
	check(c.EndAlertRate > 0 && c.EndAlertRate < 1, "end_alert_rate: %g out of range (0,1)", c.EndAlertRate)
	check(c.LearningBlockEvents >= 100, "learning_block_events: %d, want at least 100", c.LearningBlockEvents)
	check(c.LearningBlocks >= 1 && c.LearningBlocks <= 100, "learning_blocks: %d out of range 1..100", c.LearningBlocks)
	check(c.LearningMinDuration >= 0, "learning_min_duration: %s, want at least 0", c.LearningMinDuration)
	check(c.MaxSequences > 0, "max_sequences: must be positive")
	check(c.SequenceIdle > 0, "sequence_idle: must be positive")
	check(c.MaxImages > 0, "max_images: must be positive")
	check(c.FlushInterval > 0, "flush_interval: must be positive")
	check(c.BucketSize >= time.Minute, "bucket_size: %s, want at least 1m", c.BucketSize)
	check(c.Horizon >= c.BucketSize, "horizon: %s shorter than bucket_size %s", c.Horizon, c.BucketSize)
	check(c.CommitBatch > 0, "commit_batch: must be positive")
	check(c.CommitDelay >= 0 && c.CommitDelay <= time.Second, "commit_delay: %s out of range 0..1s", c.CommitDelay)
	check(c.ContainerCache > 0, "container_cache: must be positive")
	check(c.MaxVocabulary >= 16 && c.MaxVocabulary <= markov.MaxVocabSize, "max_vocabulary: %d out of range 16..%d", c.MaxVocabulary, markov.MaxVocabSize)
	check(c.Online == OnlineCusum || c.Online == OnlineWindow, "online: %q, want %q or %q", c.Online, OnlineCusum, OnlineWindow)
	check(c.Online != OnlineCusum || (c.CusumAllowance > 0 && c.CusumAllowance <= 32),
		"cusum_allowance: %g out of range (0,32] bits", c.CusumAllowance)
	check(c.CusumThreshold >= 0 && c.CusumThreshold <= 256, "cusum_threshold: %g out of range [0,256] bits", c.CusumThreshold)
	check(c.Online != OnlineCusum || (c.CusumCap > c.CusumAllowance && c.CusumCap <= 64),
		"cusum_cap: %g out of range (cusum_allowance,64] bits", c.CusumCap)
	check(c.RecentAnomaly > 0 && c.RecentAnomaly <= 24*time.Hour, "recent_anomaly: %s out of range (0,24h]", c.RecentAnomaly)
	check(c.RepeatInterval >= 0 && c.RepeatInterval <= 24*time.Hour, "repeat_interval: %s out of range [0,24h]", c.RepeatInterval)
	if err := c.Symbols.Validate(); err != nil {
		errs = append(errs, prefixErrors("symbols.", err))
	}
	return errors.Join(errs...)
}

// prefixErrors puts prefix before each of err's joined errors, so that a
// nested section's errors name their whole YAML path.
func prefixErrors(prefix string, err error) error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}
