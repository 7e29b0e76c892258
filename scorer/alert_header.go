package scorer

import (
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
	Rule        string  // "rule", which MarshalJSON writes from Event.Rule
	Image       string  // subject.image
	ContainerID string  // subject.container_id
	Score       float64 // score.value; meaningful only when Scored
	Scored      bool    // score.value is present: the alert has a score (Kafka writes the score header only then)
	Band        string  // score.band
}

// Header returns the fields of a that DecodeAlertHeader reads back from
// a's JSON.
func (a *Alert) Header() AlertHeader {
	h := AlertHeader{
		ID: a.ID, Kind: a.Kind, Time: a.Time, Priority: a.Priority, Rule: a.Event.Rule,
		Image: a.Subject.Image, ContainerID: a.Subject.ContainerID, Band: a.Score.Band,
		Scored: a.Score.HasValue(),
	}
	if h.Scored {
		h.Score = a.Score.Value
	}
	return h
}

// Detached returns h with its own copy of each string taken from the event
// (rule, image, container id), which otherwise point into the event's raw
// JSON: a header kept after its event (the outbox's cache of recent
// entries) must not keep those bytes alive. The id is built for the alert;
// kind and band are constants.
func (h AlertHeader) Detached() AlertHeader {
	h.Rule, h.Image, h.ContainerID = strings.Clone(h.Rule), strings.Clone(h.Image), strings.Clone(h.ContainerID)
	return h
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
				return d.skip(2)
			})
		case "score":
			return d.headerObject("score", 1, noteType, func(key string) error {
				switch alertKey(key, "value", "band") {
				case "value":
					// null is no score (encoding/json sets a *float64 to nil).
					if h.Scored = d.peek() != 'n'; !h.Scored {
						h.Score = 0
					}
					return d.headerFloat(&h.Score, "score.value", 2, noteType)
				case "band":
					return d.headerString(&h.Band, "score.band", 2, noteType)
				}
				return d.skip(2)
			})
		case "falco":
			hasFalco = d.peek() == '{'
		}
		return d.skip(1)
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
	return d.skip(depth)
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
	return d.skip(depth)
}

// headerTime reads a time as time.Time.UnmarshalJSON does (encoding/json
// hands it the literal text).
func (d *decoder) headerTime(dst *time.Time, field string, depth int, noteType func(error)) error {
	start := d.i
	if err := d.skip(depth); err != nil {
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
		return d.skip(depth)
	}
}
