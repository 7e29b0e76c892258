package source

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/falcosecurity/client-go/pkg/api/schema"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// The gRPC hot path. client-go's generated Response decodes output_fields
// through reflection (about 14µs and 117 allocations per event here), and
// Event.EncodeJSON goes through encoding/json's reflection (about 7µs). For
// the sub stream the input instead receives the raw message through a codec
// and decodes it with protowire (wireResponse), and renders Raw with
// appendFalcoJSON, which writes the same bytes as Event.EncodeJSON. Both are
// checked against the generated code and EncodeJSON by tests and fuzzing.

// wireCodec delegates to grpc's proto codec except for *wireResponse, which
// it fills from the raw bytes.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() (wireCodec, error) {
	c := encoding.GetCodecV2("proto")
	if c == nil {
		return wireCodec{}, errors.New("grpc proto codec not registered")
	}
	return wireCodec{proto: c}, nil
}

func (c wireCodec) Name() string                           { return "proto" }
func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(*wireResponse); ok {
		b := data.Materialize()
		return w.decode(b)
	}
	return c.proto.Unmarshal(data, v)
}

// wireResponse is falco.outputs.response as it arrives on the wire.
type wireResponse struct {
	hasTime          bool
	seconds          int64
	nanos            int32
	priority         int32
	sourceDeprecated int32
	rule, output     string
	hostname, source string
	tags             []string
	fields           []scorer.Field // arrival order, "<NA>" included; event() sorts them
	limitErr         error          // the first entry beyond scorer.MaxFields
}

// Field numbers of falco.outputs.response and google.protobuf.Timestamp.
const (
	fTime, fPriority, fSourceDeprecated, fRule, fOutput, fOutputFields, fHostname, fTags, fSource = 1, 2, 3, 4, 5, 6, 7, 8, 9
)

var errWire = errors.New("malformed falco.outputs.response")

// decode parses b with proto3 semantics: fields in any order, the last
// scalar wins, messages merge, unknown or mistyped fields are skipped,
// strings must be UTF-8. The strings of w point into b (a message's dozen
// fields were two dozen small copies), so b must not change afterwards: the
// codec hands over its own copy of each message.
func (w *wireResponse) decode(b []byte) error {
	*w = wireResponse{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == fPriority || num == fSourceDeprecated):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
			}
			b = b[n:]
			if num == fPriority {
				w.priority = int32(v)
			} else {
				w.sourceDeprecated = int32(v)
			}
		case typ == protowire.BytesType && num >= fTime && num <= fSource && num != fPriority && num != fSourceDeprecated:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
			}
			b = b[n:]
			if err := w.field(num, v); err != nil {
				return err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

func (w *wireResponse) field(num protowire.Number, v []byte) error {
	if num == fTime {
		w.hasTime = true
		return w.timestamp(v)
	}
	if num == fOutputFields {
		return w.entry(v)
	}
	if !utf8.Valid(v) {
		return fmt.Errorf("%w: field %d: invalid UTF-8", errWire, num)
	}
	s := alias(v)
	switch num {
	case fRule:
		w.rule = s
	case fOutput:
		w.output = s
	case fHostname:
		w.hostname = s
	case fTags:
		w.tags = append(w.tags, s)
	case fSource:
		w.source = s
	}
	return nil
}

// timestamp merges a google.protobuf.Timestamp into w.
func (w *wireResponse) timestamp(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: time: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: time: %v", errWire, protowire.ParseError(n))
			}
			b = b[n:]
			if num == 1 {
				w.seconds = int64(v)
			} else {
				w.nanos = int32(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: time: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// entry adds one output_fields map entry (key 1, value 2; missing ones are
// empty, the last occurrence wins).
func (w *wireResponse) entry(b []byte) error {
	var key, val []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: output_fields: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: output_fields: %v", errWire, protowire.ParseError(n))
			}
			b = b[n:]
			if num == 1 {
				key = v
			} else {
				val = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("%w: output_fields: %v", errWire, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if !utf8.Valid(key) || !utf8.Valid(val) {
		return fmt.Errorf("%w: output_fields: invalid UTF-8", errWire)
	}
	// Entries are counted as they arrive, so that a message of a million
	// tiny entries is not sorted; the rest of the limits are checked on
	// the event. The message itself stays well formed: the event is
	// refused and counted, the stream goes on.
	if err := scorer.CheckFieldCount(len(w.fields) + 1); err != nil {
		w.limitErr = err
		return nil
	}
	// "<NA>" is kept: SortFields drops a name whose last value it is (a
	// later value for it still wins), without a search per "<NA>".
	if w.fields == nil {
		w.fields = make([]scorer.Field, 0, 16)
	}
	w.fields = append(w.fields, scorer.Field{Name: alias(key), Value: alias(val)})
	return nil
}

// Timestamp bounds (google.protobuf.Timestamp: years 1 to 9999).
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// event converts w like EventFromResponse converts a Response.
func (w *wireResponse) event() (scorer.Event, error) {
	if w.limitErr != nil {
		return scorer.Event{}, w.limitErr
	}
	if !w.hasTime {
		return scorer.Event{}, &scorer.DecodeError{Reason: scorer.ReasonMissingField, Msg: `missing required field "time"`}
	}
	if w.seconds < minTimestampSeconds || w.seconds > maxTimestampSeconds || w.nanos < 0 || w.nanos >= 1e9 {
		return scorer.Event{}, &scorer.DecodeError{Reason: scorer.ReasonInvalidValue, Msg: fmt.Sprintf("field \"time\": invalid timestamp %d.%09d", w.seconds, w.nanos)}
	}
	return buildEvent(time.Unix(w.seconds, int64(w.nanos)).UTC(), w.priority, w.rule, w.output, w.source,
		schema.Source(w.sourceDeprecated), w.hostname, w.tags, scorer.SortFields(w.fields))
}

// buildEvent is the common end of both gRPC conversions. fields are sorted
// and free of "<NA>".
func buildEvent(t time.Time, priority int32, rule, output, source string, deprecated schema.Source,
	hostname string, tags []string, fields scorer.Fields) (scorer.Event, error) {
	prio := scorer.Priority(priority)
	if int32(prio) != priority || !prio.Valid() {
		return scorer.Event{}, &scorer.DecodeError{Reason: scorer.ReasonInvalidValue, Msg: fmt.Sprintf("field \"priority\": unknown value %d", priority)}
	}
	ev := scorer.Event{Time: t, Priority: prio, Rule: rule, Output: output, Source: source, Hostname: hostname, Fields: fields}
	if err := scorer.CheckLimits(&ev); err != nil {
		return scorer.Event{}, err
	}
	if len(tags) > 0 {
		ev.Tags = tags
	}
	if ev.Source == "" {
		ev.Source = strings.ToLower(deprecated.String())
	}
	ev.Raw = appendFalcoJSON(make([]byte, 0, 256+len(output)+64*len(ev.Fields)), &ev)
	return ev, nil
}

// appendFalcoJSON appends the bytes Event.EncodeJSON produces for e:
// encoding/json's key order, omitempty rules and string escaping (HTML
// characters, U+2028/U+2029 and invalid UTF-8 included), output_fields keys
// sorted.
func appendFalcoJSON(dst []byte, e *scorer.Event) []byte {
	dst = append(dst, '{')
	if e.Hostname != "" {
		dst = append(dst, `"hostname":`...)
		dst = scorer.AppendJSONString(dst, e.Hostname)
		dst = append(dst, ',')
	}
	dst = append(dst, `"output":`...)
	dst = scorer.AppendJSONString(dst, e.Output)
	if len(e.Fields) > 0 {
		dst = append(dst, `,"output_fields":{`...)
		for i, f := range e.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = scorer.AppendJSONString(dst, f.Name)
			dst = append(dst, ':')
			dst = scorer.AppendJSONString(dst, f.Value)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"priority":`...)
	dst = scorer.AppendJSONString(dst, e.Priority.String())
	dst = append(dst, `,"rule":`...)
	dst = scorer.AppendJSONString(dst, e.Rule)
	if e.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = scorer.AppendJSONString(dst, e.Source)
	}
	if len(e.Tags) > 0 {
		dst = append(dst, `,"tags":[`...)
		for i, t := range e.Tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = scorer.AppendJSONString(dst, t)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"time":"`...)
	dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"', '}')
}

// alias returns b's bytes as a string without copying them.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
