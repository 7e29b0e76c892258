package scorer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// AlertSchema names the version of the alert JSON (Kafka value, webhook body).
// Bump it on any incompatible change and document the change in the README.
const AlertSchema = "falco-scorer.alert.v1"

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
}

// Score is the anomaly view of an alert.
type Score struct {
	Value         float64  `json:"value"`     // window (or sequence) score
	Threshold     float64  `json:"threshold"` // the image's calibrated threshold; 0 while learning
	Ratio         float64  `json:"ratio"`     // Value / Threshold; 0 while learning
	Band          string   `json:"band"`      // "none", "low", "medium", "high", "critical"
	Verdict       string   `json:"verdict"`
	FalcoPriority Priority `json:"falco_priority"`
}

// Maturity describes how much the baseline behind a score has seen. The
// rules read it to rank an anomaly: the same score means more on a baseline
// that has learned long and monitored a while than on one just graduated.
type Maturity struct {
	State       string    `json:"state"` // "learning" or "monitoring"
	Events      uint64    `json:"events"`
	Transitions uint64    `json:"distinct_transitions"`
	Since       time.Time `json:"since"`
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
	Score    Score           `json:"score"`
	Baseline Maturity        `json:"baseline"`
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
		Subject: w.Subject, Score: w.Score, Baseline: w.Baseline, Explain: w.Explain, Anomaly: w.Anomaly, Reason: w.Reason}
	return nil
}
