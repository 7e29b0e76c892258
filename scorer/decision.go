package scorer

import "time"

// Decision is what the routing rules decide for one alert.
type Decision struct {
	Priority   Priority
	Band       string
	Sinks      []string
	Suppressed bool
	Reason     string
}

// Decider applies the priority, routing and suppression rules (package rules).
type Decider interface {
	Decide(a *Alert, now time.Time) Decision
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(a *Alert, now time.Time) Decision

// Decide calls f.
func (f DeciderFunc) Decide(a *Alert, now time.Time) Decision { return f(a, now) }
