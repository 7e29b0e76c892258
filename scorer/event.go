package scorer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
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
	Reason string // "invalid_json", "missing_field", "wrong_type", "invalid_value", "limit_exceeded"
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

// Decode reasons, bounded for metric labels.
const (
	ReasonInvalidJSON  = "invalid_json"
	ReasonMissingField = "missing_field"
	ReasonWrongType    = "wrong_type"
	ReasonInvalidValue = "invalid_value"
	// ReasonLimitExceeded: the event is valid JSON but breaks one of the
	// limits below; the message names the field and the limit.
	ReasonLimitExceeded = "limit_exceeded"
)

// Limits on what one event may carry, checked by every input (DecodeJSON
// for HTTP and NDJSON, the gRPC conversion through CheckLimits). They bound
// the work an event costs before it is acknowledged, whatever its shape, and
// keep names that become store keys, log fields and Kafka headers to
// sizes real Falco events never reach. A request's size is
// bounded separately (inputs.http.max_body_bytes, store.max_event_bytes).
const (
	// MaxFields bounds output_fields entries. Falco events carry 20 to 60
	// fields (a rule's output plus the json_include_* extras); an entry is
	// counted as it is read, nulls and repeated names included, so that the
	// decoder stops early instead of sorting an unbounded set.
	MaxFields = 1024
	// MaxFieldNameBytes bounds an output_fields key. The longest legitimate
	// ones carry an argument: k8s.pod.label[<label key>] with a Kubernetes
	// label key of up to 317 bytes (253 prefix, "/", 63 name) is 332.
	MaxFieldNameBytes = 512
	// MaxFieldValueBytes bounds an output_fields value (unescaped text of a
	// string, JSON text of anything else). Command lines and file paths are
	// the longest legitimate values (PATH_MAX is 4 KiB, and Falco's drivers
	// capture a bounded part of execve's arguments); 64 KiB is far above.
	MaxFieldValueBytes = 64 << 10
	// MaxNesting bounds the nesting of the whole event: the event object is
	// level 1, output_fields level 2. Falco writes at most three levels
	// (arrays of strings in output_fields); encoding/json allows 10,000.
	MaxNesting = 32
	// MaxIdentityBytes bounds the fields that name things (IdentityFields,
	// and the rule and hostname): they become image keys in the store,
	// sequence keys, log fields and Kafka headers. The longest legitimate
	// values are image references: the distribution spec caps a repository
	// name (registry included) at 255 bytes, a tag at 128 and a sha512
	// digest is 135, so a full reference stays under 530 bytes. Kubernetes
	// names are at most 253 (pod, DNS subdomain) or 63 (namespace,
	// container); a container id is 64 hex digits; proc.name is a comm (15
	// bytes) or a file name (255, NAME_MAX). 1 KiB is twice the longest.
	MaxIdentityBytes = 1 << 10
)

// CheckLimits reports the first limit e breaks (a *DecodeError with
// ReasonLimitExceeded), nil when it keeps them all. DecodeJSON checks the
// same limits while it reads; inputs that build Events another way (gRPC)
// call this.
func CheckLimits(e *Event) error {
	if err := CheckFieldCount(len(e.Fields)); err != nil {
		return err
	}
	for _, f := range e.Fields {
		if err := checkField(f.Name, f.Value); err != nil {
			return err
		}
	}
	if err := checkNames(e); err != nil {
		return err
	}
	return nil
}

// CheckFieldCount reports n output_fields entries beyond MaxFields, for an
// input that counts entries as they arrive.
func CheckFieldCount(n int) error {
	if n > MaxFields {
		return tooManyFields()
	}
	return nil
}

func tooManyFields() *DecodeError {
	return &DecodeError{ReasonLimitExceeded, fmt.Sprintf("field \"output_fields\": more than %d entries (limit: %d fields per event)", MaxFields, MaxFields)}
}

// checkField checks the sizes of one output_fields entry. Only a value
// longer than MaxIdentityBytes pays for looking its name up.
func checkField(name, value string) *DecodeError {
	if len(name) > MaxFieldNameBytes {
		return &DecodeError{ReasonLimitExceeded, fmt.Sprintf("field \"output_fields\": key %q is %d bytes (limit: %d bytes per key)",
			truncate(name, 64), len(name), MaxFieldNameBytes)}
	}
	if len(value) > MaxIdentityBytes && isIdentityField(name) {
		return nameTooLong(name, len(value))
	}
	if len(value) > MaxFieldValueBytes {
		return &DecodeError{ReasonLimitExceeded, fmt.Sprintf("field %q: value of %d bytes (limit: %d bytes per output_fields value)",
			name, len(value), MaxFieldValueBytes)}
	}
	return nil
}

// checkNames checks the sizes of the event's own names.
func checkNames(e *Event) *DecodeError {
	if len(e.Rule) > MaxIdentityBytes {
		return nameTooLong("rule", len(e.Rule))
	}
	if len(e.Hostname) > MaxIdentityBytes {
		return nameTooLong("hostname", len(e.Hostname))
	}
	return nil
}

func nameTooLong(name string, n int) *DecodeError {
	return &DecodeError{ReasonLimitExceeded, fmt.Sprintf("field %q: %d bytes (limit: %d bytes for a name)", name, n, MaxIdentityBytes)}
}

// MaxLogBytes is where TruncateForLog cuts: above the longest legitimate
// image key (repository@sha512 digest is under 400 bytes).
const MaxLogBytes = 512

// TruncateForLog returns s cut to MaxLogBytes, with "…(N bytes)" naming
// the full length when it was cut, for log fields and error messages that
// carry names from events or from the store: one oversized name must not
// fill the log each time it is mentioned.
func TruncateForLog(s string) string { return truncate(s, MaxLogBytes) }

// truncate cuts s to at most n bytes on a rune boundary, and says so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

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
