package scorer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// DecodeJSON decodes one Falco JSON event. The input must be a single JSON
// object with at least "time", "priority" and "rule"; every other key is
// optional because Falco's json_include_* options can remove it. The returned
// Event keeps a copy of b in Raw.
//
// It is a scanner specialised for Falco's event shape rather than
// encoding/json: every event crosses it, and the generic decoder cost about
// 80 allocations per event. The strings of the Event (fields, tags, rule...)
// point into the copy kept in Raw whenever they need no unescaping, so Raw
// must never be modified (nothing does: it is journaled and forwarded as is).
// It accepts and rejects what encoding/json does (a fuzz test compares them),
// except that it also enforces the limits on an event's shape (MaxFields,
// MaxFieldNameBytes, MaxFieldValueBytes, MaxNesting, MaxIdentityBytes):
// those it checks as it reads, so that the work an event costs is linear in
// its size up to the first broken limit, whatever the order of its fields.
func DecodeJSON(b []byte) (Event, error) {
	return DecodeJSONOwned(bytes.Clone(b))
}

// DecodeJSONOwned is DecodeJSON without the copy: raw becomes the Event's
// Raw, and its strings point into it, so the caller must hand over a buffer
// it never touches again (a reader that already copied the line does).
func DecodeJSONOwned(raw []byte) (Event, error) {
	d := decoder{s: unsafe.String(unsafe.SliceData(raw), len(raw)), maxDepth: MaxNesting}
	var (
		ev               Event
		fields           []Field // every output_fields entry read, in order; sorted once at the end
		tim, prio, rule  string
		hasT, hasP, hasR bool
		typeErr          *DecodeError
	)
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		kind, err := d.topLevelKind()
		if err != nil {
			return Event{}, err
		}
		return Event{}, &DecodeError{ReasonWrongType, "event must be a JSON object, got " + kind}
	}
	d.i++
	d.ws()
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			d.ws()
			key, err := d.str()
			if err != nil {
				return Event{}, err
			}
			d.ws()
			if err := d.expect(':'); err != nil {
				return Event{}, err
			}
			d.ws()
			switch key = canonicalKey(key); key {
			case "time", "priority", "rule", "output", "source", "hostname":
				v, isNull, kind, err := d.optString()
				if err != nil {
					return Event{}, err
				}
				if kind != "" {
					if typeErr == nil {
						typeErr = wrongType(key, "string", kind)
					}
					break
				}
				if isNull {
					break // null leaves a field unset, as encoding/json does
				}
				switch key {
				case "time":
					tim, hasT = v, true
				case "priority":
					prio, hasP = v, true
				case "rule":
					rule, hasR = v, true
				case "output":
					ev.Output = v
				case "source":
					ev.Source = v
				case "hostname":
					ev.Hostname = v
				}
			case "tags":
				tags, kind, err := d.tags()
				if err != nil {
					return Event{}, err
				}
				if kind != "" {
					if typeErr == nil {
						typeErr = wrongType("tags", "[]string", kind)
					}
					break
				}
				ev.Tags = tags
			case "output_fields":
				kind, err := d.fields(&fields)
				if err != nil {
					return Event{}, err
				}
				if kind != "" && typeErr == nil {
					typeErr = wrongType("output_fields", "map[string]json.RawMessage", kind)
				}
			default:
				if err := d.skip(1); err != nil {
					return Event{}, err
				}
			}
			d.ws()
			c := d.peek()
			d.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return Event{}, d.syntax(c, "after object key:value pair")
			}
		}
	}
	d.ws()
	if d.i < len(d.s) {
		return Event{}, d.syntax(d.s[d.i], "after top-level value")
	}
	if typeErr != nil {
		return Event{}, typeErr
	}
	switch {
	case !hasR:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "rule"`}
	case !hasP:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "priority"`}
	case !hasT:
		return Event{}, &DecodeError{ReasonMissingField, `missing required field "time"`}
	}
	p, err := ParsePriority(prio)
	if err != nil {
		return Event{}, &DecodeError{ReasonInvalidValue, "field \"priority\": " + err.Error()}
	}
	ts, err := time.Parse(time.RFC3339Nano, tim)
	if y := ts.UTC().Year(); err == nil && (y < 1 || y > 9999) {
		// Valid with an offset but not in UTC, where events are kept:
		// such an event could not be written back and replayed.
		err = errors.New("year out of range in UTC")
	}
	if err != nil {
		return Event{}, &DecodeError{ReasonInvalidValue, fmt.Sprintf("field \"time\": want RFC 3339 time, got %q", tim)}
	}
	ev.Time, ev.Priority, ev.Rule, ev.Raw = ts.UTC(), p, rule, raw
	if err := checkNames(&ev); err != nil {
		return Event{}, err
	}
	ev.Fields = SortFields(fields)
	return ev, nil
}

// canonicalKey maps a key to the event key it names. Like encoding/json,
// keys match case-insensitively (Unicode simple folding) when no exact
// match exists; Falco itself always writes them in lower case.
func canonicalKey(k string) string {
	switch k {
	case "time", "priority", "rule", "output", "source", "hostname", "tags", "output_fields":
		return k
	}
	eventKeys := [...]string{"time", "priority", "rule", "output", "source", "hostname", "tags", "output_fields"}
	for _, e := range eventKeys {
		if strings.EqualFold(k, e) {
			return e
		}
	}
	return k
}

func wrongType(field, want, got string) *DecodeError {
	return &DecodeError{ReasonWrongType, fmt.Sprintf("field %q: want %s, got %s", field, want, got)}
}

// jsonMaxDepth is encoding/json's nesting limit, which decoders of other
// documents than ingested events (alerts) keep.
const jsonMaxDepth = 10000

// decoder scans one JSON text.
type decoder struct {
	s string
	i int
	// maxDepth bounds nesting, counted from the top of the input: 0 is
	// jsonMaxDepth (invalid JSON beyond it, as encoding/json says), another
	// value is a limit of ours (ReasonLimitExceeded beyond it).
	maxDepth int
	// fields counts the output_fields entries read, in every
	// output_fields object of the event (a repeated key merges).
	entries int
}

func (d *decoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return d.syntax(d.peek(), fmt.Sprintf("looking for %q", c))
	}
	d.i++
	return nil
}

// syntax reports invalid JSON at the current position.
func (d *decoder) syntax(c byte, context string) error {
	if d.i >= len(d.s) || c == 0 && d.i >= len(d.s) {
		return &DecodeError{ReasonInvalidJSON, "invalid JSON: unexpected end of input"}
	}
	return &DecodeError{ReasonInvalidJSON, fmt.Sprintf("invalid JSON: invalid character %q %s (offset %d)", c, context, d.i)}
}

// topLevelKind names the value at the top level when it is not an object,
// after checking that the whole input is valid JSON.
func (d *decoder) topLevelKind() (string, error) {
	kind := kindOf(d.peek())
	if err := d.skip(0); err != nil {
		return "", err
	}
	d.ws()
	if d.i < len(d.s) {
		return "", d.syntax(d.s[d.i], "after top-level value")
	}
	return kind, nil
}

func kindOf(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '[':
		return "array"
	case c == '{':
		return "object"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}

// optString reads a string or null. For another kind of value it skips the
// value and returns its kind (a type error that the caller reports once the
// whole input is known to be valid JSON).
func (d *decoder) optString() (v string, isNull bool, kind string, err error) {
	switch d.peek() {
	case '"':
		v, err = d.str()
		return v, false, "", err
	case 'n':
		return "", true, "", d.literal("null")
	}
	kind = kindOf(d.peek())
	return "", false, kind, d.skip(1)
}

// tags reads an array of strings (or null).
func (d *decoder) tags() ([]string, string, error) {
	switch d.peek() {
	case 'n':
		return nil, "", d.literal("null")
	case '[':
	default:
		kind := kindOf(d.peek())
		return nil, kind, d.skip(1)
	}
	d.i++
	d.ws()
	tags := []string{}
	if d.peek() == ']' {
		d.i++
		return tags, "", nil
	}
	var bad string
	for {
		d.ws()
		if d.peek() == '"' {
			t, err := d.str()
			if err != nil {
				return nil, "", err
			}
			tags = append(tags, t)
		} else {
			if bad == "" {
				bad = kindOf(d.peek())
			}
			if err := d.skip(2); err != nil {
				return nil, "", err
			}
		}
		d.ws()
		c := d.peek()
		d.i++
		if c == ']' {
			break
		}
		if c != ',' {
			return nil, "", d.syntax(c, "after array element")
		}
	}
	if bad != "" {
		return nil, bad, nil
	}
	return tags, "", nil
}

// fields appends the entries of an output_fields object to *out as text:
// strings unescaped, numbers and booleans as their literal, objects and
// arrays as their JSON text; null and "<NA>" are appended as "<NA>", which
// SortFields reads as "unset" (a later duplicate wins, as in encoding/json,
// which merges a repeated output_fields object into the same map), or,
// while there are few entries, unset at once. Sorting is left to the
// caller, once per event. Entries beyond MaxFields (counted over the
// event) and oversized keys or values stop the decoding with a limit error.
func (d *decoder) fields(out *[]Field) (string, error) {
	switch d.peek() {
	case 'n':
		clear(*out)
		*out = (*out)[:0] // as encoding/json sets a map to nil
		return "", d.literal("null")
	case '{':
	default:
		kind := kindOf(d.peek())
		return kind, d.skip(1)
	}
	d.i++
	d.ws()
	f := *out
	if f == nil {
		f = make([]Field, 0, 16)
	}
	defer func() { *out = f }()
	if d.peek() == '}' {
		d.i++
		return "", nil
	}
	for {
		d.ws()
		k, err := d.str()
		if err != nil {
			return "", err
		}
		d.ws()
		if err := d.expect(':'); err != nil {
			return "", err
		}
		d.ws()
		if d.entries++; d.entries > MaxFields {
			return "", tooManyFields()
		}
		var v string
		switch c := d.peek(); {
		case c == '"':
			if v, err = d.str(); err != nil {
				return "", err
			}
		case c == 'n':
			if err := d.literal("null"); err != nil {
				return "", err
			}
			v = NA
		default:
			start := d.i
			if err := d.skip(2); err != nil {
				return "", err
			}
			v = d.s[start:d.i]
		}
		if err := checkField(k, v); err != nil {
			return "", err
		}
		if v == NA && len(f) <= smallSort {
			// Unset now: a search bounded by smallSort is cheaper than a
			// tombstone for SortFields to sort and drop.
			f = slices.DeleteFunc(f, func(x Field) bool { return x.Name == k })
		} else {
			f = append(f, Field{k, v})
		}
		d.ws()
		c := d.peek()
		d.i++
		if c == '}' {
			return "", nil
		}
		if c != ',' {
			return "", d.syntax(c, "after object key:value pair")
		}
	}
}

func (d *decoder) literal(lit string) error {
	if strings.HasPrefix(d.s[d.i:], lit) {
		d.i += len(lit)
		return nil
	}
	return d.syntax(d.peek(), "in literal "+lit)
}

// str reads a JSON string. Without escapes or invalid UTF-8 the result is
// a substring of the input (no allocation).
func (d *decoder) str() (string, error) {
	if d.peek() != '"' {
		return "", d.syntax(d.peek(), "looking for beginning of object key string")
	}
	// Plain runs eight bytes at a time, as skipString; high collects the
	// bytes passed, so that only a string with a non-ASCII byte pays for a
	// UTF-8 check.
	s, start := d.s, d.i+1
	i := start
	var high uint64
	for {
		for i+8 <= len(s) {
			w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
			if hasStringStop(w) {
				break
			}
			high |= w
			i += 8
		}
		for i < len(s) && !strStop[s[i]] {
			high |= uint64(s[i])
			i++
		}
		if i >= len(s) {
			d.i = i
			return "", d.syntax(0, "")
		}
		switch c := s[i]; {
		case c == '"':
			v := s[start:i]
			if high&0x8080808080808080 != 0 && !utf8.ValidString(v) {
				// Each invalid byte becomes U+FFFD, as in encoding/json.
				d.i = start
				return d.strSlow()
			}
			d.i = i + 1
			return v, nil
		case c == '\\':
			d.i = start
			return d.strSlow()
		default: // a control byte
			d.i = i
			return "", d.syntax(c, "in string literal")
		}
	}
}

// strSlow reads a string with escapes from d.i (just after the quote).
func (d *decoder) strSlow() (string, error) {
	var sb strings.Builder
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return sb.String(), nil
		case c < 0x20:
			return "", d.syntax(c, "in string literal")
		case c == '\\':
			if d.i+1 >= len(d.s) {
				return "", d.syntax(0, "")
			}
			e := d.s[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.syntax(d.peek(), "in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by an escaped low one is one
					// rune; a lone surrogate becomes U+FFFD.
					if strings.HasPrefix(d.s[d.i:], "\\u") {
						save := d.i
						d.i += 2
						if r2, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								sb.WriteRune(dec)
								continue
							}
						}
						d.i = save
					}
					r = utf8.RuneError
				}
				sb.WriteRune(r)
			default:
				return "", d.syntax(e, "in string escape code")
			}
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			d.i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				sb.WriteRune(utf8.RuneError)
			} else {
				sb.WriteString(d.s[d.i : d.i+size])
			}
			d.i += size
		}
	}
	return "", d.syntax(0, "")
}

func (d *decoder) hex4() (rune, bool) {
	r, ok := hexRuneAt(d.s, d.i)
	if ok {
		d.i += 4
	}
	return r, ok
}

// skip checks and passes over one JSON value enclosed in depth open
// containers. It does not unescape strings (most of what is skipped is
// string content), and it bounds nesting from the top of the input to
// d.maxDepth. Nesting is tracked on a small explicit stack, not by
// recursion, so deep input cannot exhaust the goroutine stack.
func (d *decoder) skip(depth int) error {
	var buf [32]byte
	stack := buf[:0] // open containers, '{' or '['
	for {
		d.ws()
		switch c := d.peek(); {
		case c == '{' || c == '[':
			if d.maxDepth == 0 && depth+len(stack) >= jsonMaxDepth {
				return &DecodeError{ReasonInvalidJSON, "invalid JSON: exceeded max depth"}
			}
			if d.maxDepth != 0 && depth+len(stack) >= d.maxDepth {
				return &DecodeError{ReasonLimitExceeded, fmt.Sprintf("event nested deeper than %d levels (limit: %d)", d.maxDepth, d.maxDepth)}
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

// number checks a JSON number.
func (d *decoder) number() error {
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	default:
		return d.syntax(c, "in numeric literal")
	}
	if d.peek() == '.' {
		d.i++
		if !isDigit(d.peek()) {
			return d.syntax(d.peek(), "after decimal point in numeric literal")
		}
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !isDigit(d.peek()) {
			return d.syntax(d.peek(), "in exponent of numeric literal")
		}
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
