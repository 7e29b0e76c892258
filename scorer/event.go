package scorer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	Time     time.Time         `json:"time"`
	Priority Priority          `json:"priority"`
	Rule     string            `json:"rule"`
	Output   string            `json:"output,omitempty"`
	Source   string            `json:"source,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Fields   map[string]string `json:"output_fields,omitempty"`

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

// wireEvent mirrors Falco's JSON output. output_fields values stay raw so each
// can be turned into text without a float round trip.
type wireEvent struct {
	Time         *string                    `json:"time"`
	Priority     *string                    `json:"priority"`
	Rule         *string                    `json:"rule"`
	Output       string                     `json:"output"`
	Source       string                     `json:"source"`
	Hostname     string                     `json:"hostname"`
	Tags         []string                   `json:"tags"`
	OutputFields map[string]json.RawMessage `json:"output_fields"`
}

// DecodeJSON decodes one Falco JSON event. The input must be a single JSON
// object with at least "time", "priority" and "rule"; every other key is
// optional because Falco's json_include_* options can remove it. The returned
// Event keeps a copy of b in Raw.
func DecodeJSON(b []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				return Event{}, &DecodeError{ReasonWrongType, fmt.Sprintf("event must be a JSON object, got %s", te.Value)}
			}
			return Event{}, &DecodeError{ReasonWrongType, fmt.Sprintf("field %q: want %s, got %s", field, te.Type, te.Value)}
		}
		return Event{}, &DecodeError{ReasonInvalidJSON, "invalid JSON: " + err.Error()}
	}
	switch {
	case w.Rule == nil:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "rule"`}
	case w.Priority == nil:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "priority"`}
	case w.Time == nil:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "time"`}
	}
	prio, err := ParsePriority(*w.Priority)
	if err != nil {
		return Event{}, &DecodeError{ReasonInvalidValue, "field \"priority\": " + err.Error()}
	}
	ts, err := time.Parse(time.RFC3339Nano, *w.Time)
	if y := ts.UTC().Year(); err == nil && (y < 1 || y > 9999) {
		// Valid with an offset but not in UTC, where events are kept:
		// such an event could not be written back and replayed.
		err = errors.New("year out of range in UTC")
	}
	if err != nil {
		return Event{}, &DecodeError{ReasonInvalidValue, fmt.Sprintf("field \"time\": want RFC 3339 time, got %q", *w.Time)}
	}
	ev := Event{
		Time:     ts.UTC(),
		Priority: prio,
		Rule:     *w.Rule,
		Output:   w.Output,
		Source:   w.Source,
		Hostname: w.Hostname,
		Tags:     w.Tags,
		Raw:      bytes.Clone(b),
	}
	if len(w.OutputFields) > 0 {
		ev.Fields = make(map[string]string, len(w.OutputFields))
		for k, v := range w.OutputFields {
			s, ok := fieldText(v)
			if ok {
				ev.Fields[k] = s
			}
		}
	}
	return ev, nil
}

// fieldText turns one output_fields value into the text gRPC would carry.
func fieldText(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return "", false
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		if s == NA {
			return "", false
		}
		return s, true
	}
	return string(v), true // number, bool, or a nested value kept as JSON text
}

// NA is what Falco prints for a field it could not resolve.
const NA = "<NA>"

// Field returns the first present value among names (current name first,
// then older aliases).
func (e *Event) Field(names ...string) string {
	for _, n := range names {
		if v, ok := e.Fields[n]; ok && v != "" {
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
		Hostname: e.Hostname, Output: e.Output, OutputFields: e.Fields,
		Priority: e.Priority.String(), Rule: e.Rule, Source: e.Source, Tags: e.Tags,
		Time: e.Time.UTC().Format(time.RFC3339Nano),
	})
}
