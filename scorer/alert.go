package scorer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// AlertSchema names the version of the alert JSON (Kafka value, webhook body).
// Bump it on any incompatible change and document the change in the README.
//
// v2: what is not known is absent, never a zero value: score.value,
// threshold and ratio only for an anomalous verdict, baseline only when the
// image has one (and baseline.since only when known), "anomaly" on a Falco
// alert that follows one, baseline.graduated.
const AlertSchema = "falco-scorer.alert.v2"

// Alert kinds.
const (
	KindFalco   = "falco"        // a Falco rule fired; forwarded enriched and re-prioritized
	KindAnomaly = "anomaly"      // the online window score crossed the image's threshold
	KindEnd     = "sequence_end" // a finished sequence scored anomalous as a whole
)

// Verdicts.
const (
	VerdictLearning  = "learning" // the image's baseline has not converged: scored, never alerted
	VerdictNormal    = "normal"
	VerdictAnomalous = "anomalous"
	VerdictUnscored  = "unscored" // no sequence context (for example a Falco alert without evt.type)
)

// Alert is what falco-scorer forwards: the original Falco event kept whole,
// plus the scorer's view of it.
type Alert struct {
	ID       string    // stable across replays of the same event: sinks downstream deduplicate on it
	Kind     string    // KindFalco, KindAnomaly or KindEnd
	Time     time.Time // the event's time
	Priority Priority  // final priority after the rules
	Event    Event     // the triggering Falco event; Event.Raw is forwarded as received, but for invalid UTF-8 (see MarshalJSON)

	Subject  Subject
	Score    Score
	Baseline Maturity
	Explain  *Explanation // nil when there is nothing to explain (unscored)
	Anomaly  *AnomalyRef  // a Falco alert's: the latest anomaly of its container it follows; nil when none
	Sinks    []string     // sinks chosen by the routing rules
	Reason   string       // short human text: why this is an alert
}

// Subject identifies what the event is about.
type Subject struct {
	Image       string `json:"image"`
	ImageSource string `json:"image_source"` // "digest", "tag", "repository" (image_key: repository), "cache", "container" (fallback to container id), "host" (event outside a container)
	ContainerID string `json:"container_id,omitempty"`
	Container   string `json:"container_name,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Pod         string `json:"pod,omitempty"`
	Process     string `json:"process,omitempty"`
	PID         int64  `json:"pid,omitempty"`
	Parent      string `json:"parent,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	// TreeRootPID and TreeRoot name the ancestor whose process tree raised
	// the alert (its subtree score crossed the threshold at this process's
	// step), or, on a process's own anomaly, the nearest ancestor whose
	// subtree was already in an anomalous episode: what a responder acts
	// on, and what groups one incident's alerts. Absent otherwise.
	TreeRootPID int64  `json:"tree_root_pid,omitempty"`
	TreeRoot    string `json:"tree_root,omitempty"`
}

// Score is the anomaly view of an alert. Value, Threshold and Ratio mean
// something only when HasValue: an alert that was not scored (a Falco
// alert in a normal container) has none, and its JSON leaves them out.
type Score struct {
	Value         float64  // window (or sequence) score
	Threshold     float64  // the image's calibrated threshold
	Ratio         float64  // Value / Threshold
	Band          string   // "none", "low", "medium", "high", "critical"
	Verdict       string   // VerdictAnomalous, VerdictNormal, VerdictLearning or VerdictUnscored
	FalcoPriority Priority // the Falco event's own priority
}

// HasValue reports whether the score carries a value, threshold and ratio:
// only an anomalous verdict does (an anomaly, or a Falco alert following
// one, which carries that anomaly's).
func (s *Score) HasValue() bool { return s.Verdict == VerdictAnomalous }

// scoreJSON is the wire form of Score: absent numbers, not zeros.
type scoreJSON struct {
	Value         *float64 `json:"value,omitempty"`
	Threshold     *float64 `json:"threshold,omitempty"`
	Ratio         *float64 `json:"ratio,omitempty"`
	Band          string   `json:"band"`
	Verdict       string   `json:"verdict"`
	FalcoPriority Priority `json:"falco_priority"`
}

func (s *Score) wire() scoreJSON {
	w := scoreJSON{Band: s.Band, Verdict: s.Verdict, FalcoPriority: s.FalcoPriority}
	if s.HasValue() {
		v, t, r := s.Value, s.Threshold, s.Ratio
		w.Value, w.Threshold, w.Ratio = &v, &t, &r
	}
	return w
}

func (w *scoreJSON) score() Score {
	s := Score{Band: w.Band, Verdict: w.Verdict, FalcoPriority: w.FalcoPriority}
	for _, f := range []struct {
		dst *float64
		src *float64
	}{{&s.Value, w.Value}, {&s.Threshold, w.Threshold}, {&s.Ratio, w.Ratio}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	return s
}

// Baseline states.
const (
	StateLearning   = "learning"
	StateMonitoring = "monitoring"
)

// Maturity describes how much the baseline behind a score has seen; its
// zero value (State "") means the alert's image has no baseline. The
// rules read it to rank an anomaly: the same score means more on a baseline
// that has learned long and monitored a while than on one just graduated.
type Maturity struct {
	State       string    `json:"state"` // "learning" or "monitoring"
	Events      uint64    `json:"events"`
	Transitions uint64    `json:"distinct_transitions"`
	Since       time.Time `json:"since,omitzero"`
	Graduated   time.Time `json:"graduated,omitzero"` // when it last went from learning to monitoring; zero while learning
	Inherited   string    `json:"inherited_from,omitempty"`
}

// AnomalyRef names the anomaly a Falco alert follows: the latest anomalous
// verdict (window alarm or end of process) in the alert's container within
// the scorer's recent_anomaly interval, so a reader can find its alert.
type AnomalyRef struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // KindAnomaly or KindEnd
	Time      time.Time `json:"time"` // the anomalous event's time
	Score     float64   `json:"score"`
	Threshold float64   `json:"threshold"`
	Ratio     float64   `json:"ratio"`
	Process   string    `json:"process,omitempty"`
	PID       int64     `json:"pid,omitempty"`
}

// Explanation lists the least likely transitions in the scored window.
type Explanation struct {
	Window      []string     `json:"window"` // the window's latest symbols (markov.ExplainEvents at most), oldest first
	Transitions []Transition `json:"transitions"`
}

// Transition is one scored step: the history, the symbol that followed, the
// model's probability for it and how often the baseline saw that history.
type Transition struct {
	History     []string `json:"history"`
	Symbol      string   `json:"symbol"`
	Probability float64  `json:"probability"`
	Surprise    float64  `json:"surprise"`
	HistorySeen uint64   `json:"history_seen"`
}

// AlertID derives a stable id from the event bytes and the alert kind, so an
// event replayed after a crash yields the same id.
func AlertID(raw []byte, kind string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// alertJSON is the versioned wire form, documented in the README.
type alertJSON struct {
	Schema   string          `json:"schema"`
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Time     time.Time       `json:"time"`
	Priority Priority        `json:"priority"`
	Rule     string          `json:"rule"`
	Reason   string          `json:"reason,omitempty"`
	Subject  Subject         `json:"subject"`
	Score    scoreJSON       `json:"score"`
	Baseline *Maturity       `json:"baseline,omitempty"` // nil: the image has no baseline
	Anomaly  *AnomalyRef     `json:"anomaly,omitempty"`
	Explain  *Explanation    `json:"explanation,omitempty"`
	Falco    json.RawMessage `json:"falco,omitempty"`
}

// MarshalJSON writes the versioned alert schema: scorer fields at the top
// level and the original Falco event under "falco". The event is spliced in
// as received (it was valid JSON to be decoded at all), only compacted when
// it spans several lines, so alerts stay one line each, and with each byte
// that is not UTF-8 (and each \u escape of an unpaired surrogate) replaced
// by \ufffd, so that strict JSON parsers downstream can read every alert;
// encoding/json reads the event the same either way.
//
// Every alert is marshalled once per emit, so the JSON is written by hand
// (alert_json.go) rather than by encoding/json reflection; the bytes are the
// same as encoding/json's.
func (a *Alert) MarshalJSON() ([]byte, error) {
	falco, err := a.falcoJSON()
	if err != nil {
		return nil, err
	}
	return appendAlertJSON(make([]byte, 0, alertJSONSize(a, falco)), a, falco)
}

// UnmarshalJSON reads the versioned alert schema back (the outbox stores it).
func (a *Alert) UnmarshalJSON(b []byte) error {
	var w alertJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ev, err := DecodeJSON(w.Falco)
	if err != nil {
		return err
	}
	*a = Alert{ID: w.ID, Kind: w.Kind, Time: w.Time, Priority: w.Priority, Event: ev,
		Subject: w.Subject, Score: w.Score.score(), Explain: w.Explain, Anomaly: w.Anomaly, Reason: w.Reason}
	if w.Baseline != nil {
		a.Baseline = *w.Baseline
	}
	return nil
}
