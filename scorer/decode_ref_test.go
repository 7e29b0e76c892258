package scorer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
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

// decodeJSONReference is the encoding/json decoder DecodeJSON replaced,
// kept as the reference its fuzz test compares against.
// The input must be a single JSON
// object with at least "time", "priority" and "rule"; every other key is
// optional because Falco's json_include_* options can remove it. The returned
// Event keeps a copy of b in Raw.
func decodeJSONReference(b []byte) (Event, error) {
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
		m := make(map[string]string, len(w.OutputFields))
		for k, v := range w.OutputFields {
			s, ok := fieldText(v)
			if ok {
				m[k] = s
			}
		}
		ev.Fields = FieldsOf(m)
	}
	return ev, nil
}

// FuzzDecodeJSONMatchesReference checks the specialised scanner against
// the encoding/json decoder it replaced: the same inputs are accepted, and
// accepted inputs give the same Event.
func FuzzDecodeJSONMatchesReference(f *testing.F) {
	for _, s := range []string{
		sample,
		`{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z"}`,
		`{"rule":"r\u00e9\ud83d\ude00\ud800x","priority":"Notice","time":"2026-11-24T12:00:00Z","tags":["a","b\n"],"output_fields":{"a":{"x":[1,2,{"y":null}]},"b":[],"c":-1.5e+3,"d":false,"a":null,"e":"<NA>","f":"\"q\""}}`,
		`{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","tags":null,"output_fields":null,"output":null}`,
		`{"rule":5}`, `[1]`, `"x"`, `{"rule":"r"} x`, `{"a":[[[[]]]]}`, "{\"rule\":\"\xff\"}", `{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","tags":[1]}`,
		`{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","output_fields":{"k":01}}`,
		`{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","output_fields":{"k":1.}}`,
		`{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","output_fields":{"k":"a\tb"}}`,
		` { "rule" : "r" , "priority" : "Notice" , "time" : "2026-11-24T12:00:00Z" } `,
		`{"RULE":"r","Priority":"Notice","tImE":"2026-11-24T12:00:00Z","rule":"s","ſource":"x","OUTPUT_FIELDS":{"K":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeJSON(b)
		want, refErr := decodeJSONReference(b)
		var le *DecodeError
		if errors.As(err, &le) && le.Reason == ReasonLimitExceeded {
			// The reference has no limits (MaxNesting, MaxFields...): only
			// check that the input breaks one, counting what DecodeJSON
			// counts as read (a later value of a name does not undo an
			// earlier one that broke a limit).
			if refErr == nil && CheckLimits(&want) == nil && !deeperThan(b, MaxNesting) && !manyEntries(b) && !longString(b) {
				t.Fatalf("DecodeJSON(%q) error = %v, but the reference event keeps the limits", b, err)
			}
			return
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("DecodeJSON(%q) error = %v, reference error = %v", b, err, refErr)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("DecodeJSON(%q) error %v is not a *DecodeError with a reason", b, err)
			}
			return
		}
		// An object whose fields are all null decodes to no fields: nil and
		// empty maps mean the same.
		if len(want.Fields) == 0 {
			want.Fields = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeJSON(%q) =\n%#v\nreference:\n%#v", b, got, want)
		}
	})
}

// deeperThan reports JSON text nested deeper than n (brackets in strings
// count too: an over-estimate is enough here).
func deeperThan(b []byte, n int) bool {
	depth := 0
	for _, c := range b {
		switch c {
		case '{', '[':
			if depth++; depth > n {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// manyEntries reports text that may hold more than MaxFields entries or
// names repeated beyond them (an over-estimate: every colon counts).
func manyEntries(b []byte) bool { return bytes.Count(b, []byte(":")) > MaxFields }

// longString reports a run between quotes longer than MaxIdentityBytes.
func longString(b []byte) bool {
	last := -1
	for i, c := range b {
		if c == '"' {
			if last >= 0 && i-last > MaxIdentityBytes {
				return true
			}
			last = i
		}
	}
	return false
}
