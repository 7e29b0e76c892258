package scorer

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// AlertHeader is the part of an alert that routing and payload-forwarding
// sinks read (Kafka key and headers): top-level fields of the alert JSON,
// without the explanation or the Falco event.
type AlertHeader struct {
	ID          string
	Kind        string
	Time        time.Time
	Priority    Priority
	Rule        string // "rule", which MarshalJSON writes from Event.Rule
	Image       string // subject.image
	ContainerID string // subject.container_id
	Score       float64
	Band        string // score.band
}

// Header returns the fields of a that DecodeAlertHeader reads back from
// a's JSON.
func (a *Alert) Header() AlertHeader {
	return AlertHeader{
		ID: a.ID, Kind: a.Kind, Time: a.Time, Priority: a.Priority, Rule: a.Event.Rule,
		Image: a.Subject.Image, ContainerID: a.Subject.ContainerID, Score: a.Score.Value, Band: a.Score.Band,
	}
}

// DecodeAlertHeader reads the header of an alert JSON (MarshalJSON's
// output) without decoding the explanation or the Falco event: about ten
// times cheaper than UnmarshalJSON, for sinks that forward the payload.
//
// Whatever UnmarshalJSON accepts, it accepts with the same values (keys
// match as in encoding/json: exactly, else case-insensitively; the last
// duplicate wins). It rejects what is not one valid JSON object, a header
// field of the wrong type or value, and an alert whose "falco" is not a JSON
// object. Unlike UnmarshalJSON it does not check the fields it does not
// read, nor the Falco event's content. The strings of the header do not
// alias b.
func DecodeAlertHeader(b []byte) (AlertHeader, error) {
	d := decoder{s: unsafe.String(unsafe.SliceData(b), len(b))}
	var (
		h        AlertHeader
		hasFalco bool
		typeErr  error
	)
	noteType := func(err error) {
		if typeErr == nil {
			typeErr = err
		}
	}
	d.ws()
	if d.peek() != '{' {
		kind, err := d.topLevelKind()
		if err != nil {
			return AlertHeader{}, err
		}
		return AlertHeader{}, &DecodeError{ReasonWrongType, "alert must be a JSON object, got " + kind}
	}
	err := d.object(func(key string) error {
		switch alertKey(key, "id", "kind", "time", "priority", "rule", "subject", "score", "falco") {
		case "id":
			return d.headerString(&h.ID, "id", 1, noteType)
		case "kind":
			return d.headerString(&h.Kind, "kind", 1, noteType)
		case "rule":
			return d.headerString(&h.Rule, "rule", 1, noteType)
		case "time":
			return d.headerTime(&h.Time, "time", 1, noteType)
		case "priority":
			return d.headerPriority(&h.Priority, "priority", 1, noteType)
		case "subject":
			return d.headerObject("subject", 1, noteType, func(key string) error {
				switch alertKey(key, "image", "container_id") {
				case "image":
					return d.headerString(&h.Image, "subject.image", 2, noteType)
				case "container_id":
					return d.headerString(&h.ContainerID, "subject.container_id", 2, noteType)
				}
				return d.skipValue(2)
			})
		case "score":
			return d.headerObject("score", 1, noteType, func(key string) error {
				switch alertKey(key, "value", "band") {
				case "value":
					return d.headerFloat(&h.Score, "score.value", 2, noteType)
				case "band":
					return d.headerString(&h.Band, "score.band", 2, noteType)
				}
				return d.skipValue(2)
			})
		case "falco":
			hasFalco = d.peek() == '{'
		}
		return d.skipValue(1)
	})
	if err != nil {
		return AlertHeader{}, err
	}
	d.ws()
	if d.i < len(d.s) {
		return AlertHeader{}, d.syntax(d.s[d.i], "after top-level value")
	}
	if typeErr != nil {
		return AlertHeader{}, typeErr
	}
	if !hasFalco {
		return AlertHeader{}, &DecodeError{ReasonMissingField, `alert: field "falco": want the Falco event object`}
	}
	h.detach()
	return h, nil
}

// detach copies the strings of h, which point into the input, into one
// new allocation.
func (h *AlertHeader) detach() {
	fields := [...]*string{&h.ID, &h.Kind, &h.Rule, &h.Image, &h.ContainerID, &h.Band}
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, f := range fields {
		sb.WriteString(*f)
	}
	all := sb.String()
	for _, f := range fields {
		n := len(*f)
		*f, all = all[:n], all[n:]
	}
}

// alertKey returns the name among names that key selects: an exact match,
// else a case-insensitive one (as encoding/json matches struct fields), else
// "".
func alertKey(key string, names ...string) string {
	for _, n := range names {
		if key == n {
			return n
		}
	}
	for _, n := range names {
		if strings.EqualFold(key, n) {
			return n
		}
	}
	return ""
}

// object reads an object at d.i, calling member with d just after each
// key's colon; member must consume the value.
func (d *decoder) object(member func(key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	d.ws()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if err := d.expect(':'); err != nil {
			return err
		}
		d.ws()
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		c := d.peek()
		d.i++
		if c == '}' {
			return nil
		}
		if c != ',' {
			d.i--
			return d.syntax(c, "after object key:value pair")
		}
	}
}

// headerObject reads a nested object (null leaves it unset, as in
// encoding/json); another kind of value is a type error.
func (d *decoder) headerObject(field string, depth int, noteType func(error), member func(key string) error) error {
	switch d.peek() {
	case '{':
		return d.object(member)
	case 'n':
		return d.literal("null")
	}
	noteType(wrongType(field, "object", kindOf(d.peek())))
	return d.skipValue(depth)
}

func (d *decoder) headerString(dst *string, field string, depth int, noteType func(error)) error {
	switch d.peek() {
	case '"':
		v, err := d.str()
		*dst = v // detach copies it
		return err
	case 'n':
		return d.literal("null")
	}
	noteType(wrongType(field, "string", kindOf(d.peek())))
	return d.skipValue(depth)
}

// headerTime reads a time as time.Time.UnmarshalJSON does (encoding/json
// hands it the literal text).
func (d *decoder) headerTime(dst *time.Time, field string, depth int, noteType func(error)) error {
	start := d.i
	if err := d.skipValue(depth); err != nil {
		return err
	}
	lit := d.s[start:d.i]
	if lit == "null" {
		return nil
	}
	if err := dst.UnmarshalJSON(unsafe.Slice(unsafe.StringData(lit), len(lit))); err != nil {
		noteType(&DecodeError{ReasonInvalidValue, fmt.Sprintf("field %q: %v", field, err)})
	}
	return nil
}

func (d *decoder) headerPriority(dst *Priority, field string, depth int, noteType func(error)) error {
	if d.peek() != '"' {
		var none string
		return d.headerString(&none, field, depth, noteType) // null, or a type error
	}
	v, err := d.str()
	if err != nil {
		return err
	}
	p, err := ParsePriority(v)
	if err != nil {
		noteType(&DecodeError{ReasonInvalidValue, fmt.Sprintf("field %q: %v", field, err)})
		return nil
	}
	*dst = p
	return nil
}

// headerFloat reads a number as encoding/json does into a float64: one
// out of range is an error.
func (d *decoder) headerFloat(dst *float64, field string, depth int, noteType func(error)) error {
	switch c := d.peek(); {
	case c == 'n':
		return d.literal("null")
	case c == '-' || isDigit(c):
		start := d.i
		if err := d.number(); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(d.s[start:d.i], 64)
		if err != nil {
			noteType(&DecodeError{ReasonInvalidValue, fmt.Sprintf("field %q: number %s out of range", field, d.s[start:d.i])})
			return nil
		}
		*dst = f
		return nil
	default:
		noteType(wrongType(field, "number", kindOf(c)))
		return d.skipValue(depth)
	}
}

// skipValue checks and passes over one JSON value enclosed in depth
// containers. Unlike skip, it does not unescape strings (most of an alert is
// skipped: the Falco event, the explanation), and it bounds nesting from the
// top of the input, as encoding/json does.
func (d *decoder) skipValue(depth int) error {
	var buf [32]byte
	stack := buf[:0] // open containers, '{' or '['
	for {
		d.ws()
		switch c := d.peek(); {
		case c == '{' || c == '[':
			if depth+len(stack) >= maxDepth {
				return &DecodeError{ReasonInvalidJSON, "invalid JSON: exceeded max depth"}
			}
			d.i++
			d.ws()
			if (c == '{' && d.peek() == '}') || (c == '[' && d.peek() == ']') {
				d.i++
				break // an empty container is a complete value
			}
			stack = append(stack, c)
			if c == '{' {
				if err := d.skipKeyColon(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if err := d.skipString(); err != nil {
				return err
			}
		case c == 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		case c == '-' || isDigit(c):
			if err := d.number(); err != nil {
				return err
			}
		default:
			return d.syntax(c, "looking for beginning of value")
		}
		// A value is complete: close containers, or move to the next element.
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			c := d.peek()
			top := stack[len(stack)-1]
			if c == ',' {
				d.i++
				if top == '{' {
					d.ws()
					if err := d.skipKeyColon(); err != nil {
						return err
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				d.i++
				stack = stack[:len(stack)-1]
				continue
			}
			return d.syntax(c, "after value")
		}
	}
}

func (d *decoder) skipKeyColon() error {
	if d.peek() != '"' {
		return d.syntax(d.peek(), "looking for beginning of object key string")
	}
	if err := d.skipString(); err != nil {
		return err
	}
	d.ws()
	return d.expect(':')
}

// strStop marks the bytes that end a run of plain string content: the
// quote, the backslash and the control bytes (invalid in a string).
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// skipString passes over the string at d.i, checking it as encoding/json
// does: no control bytes and only valid escapes. Other bytes, even invalid
// UTF-8, are allowed. Plain runs are scanned eight bytes at a time: most of
// a skipped Falco event is string content.
func (d *decoder) skipString() error {
	s, i := d.s, d.i+1 // after the opening quote
	for {
		for i+8 <= len(s) && !hasStringStop(binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))) {
			i += 8
		}
		for i < len(s) && !strStop[s[i]] {
			i++ // at most 8 bytes: the word had a stop byte, or the input ends
		}
		if i >= len(s) {
			d.i = i
			return d.syntax(0, "")
		}
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			return nil
		case c < 0x20:
			d.i = i
			return d.syntax(c, "in string literal")
		}
		// A backslash.
		if i+1 >= len(s) {
			d.i = len(s)
			return d.syntax(0, "")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			d.i = i + 2
			if _, ok := d.hex4(); !ok {
				return d.syntax(d.peek(), "in \\u hexadecimal character escape")
			}
			i = d.i
		default:
			d.i = i + 1
			return d.syntax(e, "in string escape code")
		}
	}
}

// hasStringStop reports whether one of the eight bytes of w is a quote, a
// backslash or a control byte (the classic SWAR zero-byte tests, exact for
// "any byte").
func hasStringStop(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return (hasZero(w^('"'*ones)) | hasZero(w^('\\'*ones)) | ((w - 0x20*ones) & ^w & highs)) != 0
}
