package scorer

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// appendAlertJSON appends the alert schema for a with falco (already
// compact) as the "falco" value. Its output is byte for byte what
// encoding/json wrote for alertJSON (alert_ref_test.go keeps that version
// and a fuzz test compares them): strings HTML-escaped, floats as ES6
// numbers, times as RFC 3339 with nanoseconds, omitempty honoured. Like
// encoding/json it fails on NaN or infinite scores, an invalid priority or
// a time that RFC 3339 cannot represent.
func appendAlertJSON(b []byte, a *Alert, falco []byte) ([]byte, error) {
	var err error
	b = append(b, `{"schema":`...)
	b = AppendJSONString(b, AlertSchema)
	b = append(b, `,"id":`...)
	b = AppendJSONString(b, a.ID)
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, a.Kind)
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, a.Time, "time"); err != nil {
		return nil, err
	}
	b = append(b, `,"priority":`...)
	if b, err = appendJSONPriority(b, a.Priority, "priority"); err != nil {
		return nil, err
	}
	b = append(b, `,"rule":`...)
	b = AppendJSONString(b, a.Event.Rule)
	if a.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, a.Reason)
	}

	s := &a.Subject
	b = append(b, `,"subject":{"image":`...)
	b = AppendJSONString(b, s.Image)
	b = append(b, `,"image_source":`...)
	b = AppendJSONString(b, s.ImageSource)
	b = appendOptString(b, `,"container_id":`, s.ContainerID)
	b = appendOptString(b, `,"container_name":`, s.Container)
	b = appendOptString(b, `,"namespace":`, s.Namespace)
	b = appendOptString(b, `,"pod":`, s.Pod)
	b = appendOptString(b, `,"process":`, s.Process)
	if s.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, s.PID, 10)
	}
	b = appendOptString(b, `,"parent":`, s.Parent)
	b = appendOptString(b, `,"hostname":`, s.Hostname)

	sc := &a.Score
	b = append(b, `},"score":{"value":`...)
	if b, err = appendJSONFloat(b, sc.Value, "score.value"); err != nil {
		return nil, err
	}
	b = append(b, `,"threshold":`...)
	if b, err = appendJSONFloat(b, sc.Threshold, "score.threshold"); err != nil {
		return nil, err
	}
	b = append(b, `,"ratio":`...)
	if b, err = appendJSONFloat(b, sc.Ratio, "score.ratio"); err != nil {
		return nil, err
	}
	b = append(b, `,"band":`...)
	b = AppendJSONString(b, sc.Band)
	b = append(b, `,"verdict":`...)
	b = AppendJSONString(b, sc.Verdict)
	b = append(b, `,"falco_priority":`...)
	if b, err = appendJSONPriority(b, sc.FalcoPriority, "score.falco_priority"); err != nil {
		return nil, err
	}

	m := &a.Baseline
	b = append(b, `},"baseline":{"state":`...)
	b = AppendJSONString(b, m.State)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, m.Events, 10)
	b = append(b, `,"distinct_transitions":`...)
	b = strconv.AppendUint(b, m.Transitions, 10)
	b = append(b, `,"since":`...)
	if b, err = appendJSONTime(b, m.Since, "baseline.since"); err != nil {
		return nil, err
	}
	b = appendOptString(b, `,"inherited_from":`, m.Inherited)
	b = append(b, '}')

	if x := a.Explain; x != nil {
		b = append(b, `,"explanation":{"window":`...)
		b = appendJSONStrings(b, x.Window)
		b = append(b, `,"transitions":`...)
		if x.Transitions == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i := range x.Transitions {
				t := &x.Transitions[i]
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"history":`...)
				b = appendJSONStrings(b, t.History)
				b = append(b, `,"symbol":`...)
				b = AppendJSONString(b, t.Symbol)
				b = append(b, `,"probability":`...)
				if b, err = appendJSONFloat(b, t.Probability, "explanation.transitions.probability"); err != nil {
					return nil, err
				}
				b = append(b, `,"surprise":`...)
				if b, err = appendJSONFloat(b, t.Surprise, "explanation.transitions.surprise"); err != nil {
					return nil, err
				}
				b = append(b, `,"history_seen":`...)
				b = strconv.AppendUint(b, t.HistorySeen, 10)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `,"falco":`...)
	b = append(b, falco...)
	return append(b, '}'), nil
}

// alertJSONSize estimates the length of a's JSON, so that MarshalJSON
// allocates once for a typical alert.
func alertJSONSize(a *Alert, falco []byte) int {
	n := 560 + len(falco) + len(a.ID) + len(a.Kind) + len(a.Event.Rule) + len(a.Reason)
	s := &a.Subject
	n += len(s.Image) + len(s.ImageSource) + len(s.ContainerID) + len(s.Container) + len(s.Namespace) +
		len(s.Pod) + len(s.Process) + len(s.Parent) + len(s.Hostname)
	n += len(a.Score.Band) + len(a.Score.Verdict) + len(a.Baseline.State) + len(a.Baseline.Inherited)
	if x := a.Explain; x != nil {
		n += 40
		for _, w := range x.Window {
			n += len(w) + 3
		}
		for i := range x.Transitions {
			t := &x.Transitions[i]
			n += 120 + len(t.Symbol)
			for _, h := range t.History {
				n += len(h) + 3
			}
		}
	}
	return n
}

func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, key...)
	return AppendJSONString(b, s)
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, s)
	}
	return append(b, ']')
}

func appendJSONTime(b []byte, t time.Time, field string) ([]byte, error) {
	b = append(b, '"')
	b2, err := t.AppendText(b)
	if err != nil {
		return nil, fmt.Errorf("alert field %s: %w", field, err)
	}
	return append(b2, '"'), nil
}

func appendJSONPriority(b []byte, p Priority, field string) ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("alert field %s: invalid priority %d", field, int8(p))
	}
	return AppendJSONString(b, priorityNames[p]), nil
}

// appendJSONFloat writes f as encoding/json does: like ES6, %f between 1e-6
// and 1e21, otherwise %e with the exponent unpadded. NaN and infinities
// have no JSON form and are an error.
func appendJSONFloat(b []byte, f float64, field string) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("alert field %s: unsupported value %s", field, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// htmlSafe marks the ASCII bytes that encoding/json writes unescaped: not
// the controls, '"', '\\', nor '<', '>' and '&' (escaped for HTML).
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString writes s as a JSON string exactly as encoding/json does
// with HTML escaping on: \b \f \n \r \t and \" \\ short escapes, other
// controls and <, >, & as \u00XX, invalid UTF-8 bytes as \ufffd, and U+2028
// and U+2029 escaped.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// compactJSON appends src without the whitespace between its tokens, as
// json.Compact does, and fails as it does unless src is one JSON value.
func compactJSON(dst, src []byte) ([]byte, error) {
	d := decoder{s: unsafe.String(unsafe.SliceData(src), len(src))}
	d.ws()
	if err := d.skip(0); err != nil {
		return nil, err
	}
	d.ws()
	if d.i < len(d.s) {
		return nil, d.syntax(d.s[d.i], "after top-level value")
	}
	inString := false
	start := 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case inString:
			if c == '\\' {
				i++ // the escaped byte cannot end the string
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...), nil
}

// falcoJSON returns the Falco event as it goes under "falco": Raw as
// received, compacted when it spans lines, or built with Event.EncodeJSON
// when there is no Raw (gRPC input without JSON).
func (a *Alert) falcoJSON() ([]byte, error) {
	raw := []byte(a.Event.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = a.Event.EncodeJSON(); err != nil {
			return nil, err
		}
	} else if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 { // faster than ContainsAny
		c, err := compactJSON(make([]byte, 0, len(raw)), raw)
		if err != nil {
			return nil, fmt.Errorf("alert %s: falco event: %w", a.ID, err)
		}
		raw = c
	}
	return bytes.TrimSpace(raw), nil
}
