package scorer

import (
	"fmt"
	"strings"
)

// Priority is Falco's eight-level severity scale. The numeric values match
// Falco's own enum (and client-go's outputs.Priority): lower is more severe.
type Priority int8

// Falco priorities, most severe first.
const (
	PriorityEmergency Priority = iota
	PriorityAlert
	PriorityCritical
	PriorityError
	PriorityWarning
	PriorityNotice
	PriorityInformational
	PriorityDebug
)

var priorityNames = [...]string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

// String returns Falco's spelling of the priority ("Warning").
func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("Priority(%d)", int8(p))
	}
	return priorityNames[p]
}

// Valid reports whether p is one of Falco's eight levels.
func (p Priority) Valid() bool { return p >= PriorityEmergency && p <= PriorityDebug }

// AtLeast reports whether p is as severe as min or more.
func (p Priority) AtLeast(min Priority) bool { return p <= min }

// Raise moves p up by n levels (toward Emergency), clamped to the scale.
func (p Priority) Raise(n int) Priority {
	q := int(p) - n
	if q < int(PriorityEmergency) {
		q = int(PriorityEmergency)
	}
	if q > int(PriorityDebug) {
		q = int(PriorityDebug)
	}
	return Priority(q)
}

// ParsePriority reads a Falco priority case-insensitively. "Info" is accepted
// for Informational, as Falco does.
func ParsePriority(s string) (Priority, error) {
	t := strings.TrimSpace(s)
	for i, n := range priorityNames {
		if strings.EqualFold(t, n) {
			return Priority(i), nil
		}
	}
	if strings.EqualFold(t, "info") {
		return PriorityInformational, nil
	}
	return 0, fmt.Errorf("unknown priority %q (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)", s)
}

// MarshalText writes Falco's spelling.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("invalid priority %d", int8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText accepts any spelling ParsePriority accepts.
func (p *Priority) UnmarshalText(b []byte) error {
	q, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
