package scorer

import "time"

// Decision is what the routing rules decide for one alert. The rules
// engine (package rules) returns it as is.
type Decision struct {
	// Priority is the final priority; the pipeline stores it in
	// Alert.Priority.
	Priority Priority
	// Band is the anomaly band of the alert's score ratio; the pipeline
	// stores it in Alert.Score.Band.
	Band string
	// Sinks are the destinations, sorted; empty when suppressed or when the
	// priority is below every candidate sink's minimum.
	Sinks []string
	// Suppressed is true when a suppression rule or the dedup window dropped
	// the alert. Nothing is delivered then.
	Suppressed bool
	// Reason explains the decision in a short human sentence.
	Reason string
}

// Decider applies the priority, routing and suppression rules (package rules).
type Decider interface {
	Decide(a *Alert, now time.Time) Decision
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(a *Alert, now time.Time) Decision

// Decide calls f.
func (f DeciderFunc) Decide(a *Alert, now time.Time) Decision { return f(a, now) }
