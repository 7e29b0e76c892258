package scorer

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event is one Falco event, whichever input it came from. The HTTP, gRPC and
// NDJSON inputs produce equal Events for the same Falco event.
//
// Fields holds Falco's output_fields as text, because that is what the gRPC
// output sends (numbers arrive as strings there): JSON numbers and booleans
// keep their literal text, JSON null and Falco's "<NA>" are dropped.
type Event struct {
	Time     time.Time `json:"time"`
	Priority Priority  `json:"priority"`
	Rule     string    `json:"rule"`
	Output   string    `json:"output,omitempty"`
	Source   string    `json:"source,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	Fields   Fields    `json:"output_fields,omitempty"`

	// Raw is the event as Falco JSON: the bytes received over HTTP or NDJSON,
	// or the equivalent JSON built from a gRPC response. It is what the
	// journal stores and what sinks forward unchanged.
	Raw json.RawMessage `json:"-"`
}

// DecodeError is returned for input that is not a usable Falco event. Reason
// is a short bounded token suitable for a metric label.
type DecodeError struct {
	Reason string // "invalid_json", "missing_field", "wrong_type", "invalid_value"
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

// Decode reasons, bounded for metric labels.
const (
	ReasonInvalidJSON  = "invalid_json"
	ReasonMissingField = "missing_field"
	ReasonWrongType    = "wrong_type"
	ReasonInvalidValue = "invalid_value"
)

// NA is what Falco prints for a field it could not resolve.
const NA = "<NA>"

// Field returns the first present value among names (current name first,
// then older aliases).
func (e *Event) Field(names ...string) string {
	for _, n := range names {
		if v := e.Fields.Value(n); v != "" {
			return v
		}
	}
	return ""
}

// IntField parses the first present value among names as an integer.
func (e *Event) IntField(names ...string) (int64, bool) {
	s := e.Field(names...)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// HasTag reports whether the event carries tag t.
func (e *Event) HasTag(t string) bool {
	for _, x := range e.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// EncodeJSON renders e as Falco JSON (the shape http_output posts), with
// output_fields as strings. It is used for events that arrive without JSON
// (gRPC), so that the journal and the sinks always have Falco JSON.
func (e *Event) EncodeJSON() ([]byte, error) {
	type out struct {
		Hostname     string            `json:"hostname,omitempty"`
		Output       string            `json:"output"`
		OutputFields map[string]string `json:"output_fields,omitempty"`
		Priority     string            `json:"priority"`
		Rule         string            `json:"rule"`
		Source       string            `json:"source,omitempty"`
		Tags         []string          `json:"tags,omitempty"`
		Time         string            `json:"time"`
	}
	return json.Marshal(out{
		Hostname: e.Hostname, Output: e.Output, OutputFields: e.Fields.Map(),
		Priority: e.Priority.String(), Rule: e.Rule, Source: e.Source, Tags: e.Tags,
		Time: e.Time.UTC().Format(time.RFC3339Nano),
	})
}
