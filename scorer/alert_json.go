package scorer

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
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
	b = appendSubjectJSON(b, &a.Subject)
	// Each part in order; the first error ends the alert.
	for _, part := range []func([]byte, *Alert) ([]byte, error){appendScoreJSON, appendBaselineJSON, appendAnomalyJSON, appendExplanationJSON} {
		if b, err = part(b, a); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"falco":`...)
	b = append(b, falco...)
	return append(b, '}'), nil
}

func appendSubjectJSON(b []byte, s *Subject) []byte {
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
	if s.TreeRootPID != 0 {
		b = append(b, `,"tree_root_pid":`...)
		b = strconv.AppendInt(b, s.TreeRootPID, 10)
	}
	b = appendOptString(b, `,"tree_root":`, s.TreeRoot)
	return append(b, '}')
}

func appendScoreJSON(b []byte, a *Alert) ([]byte, error) {
	var err error
	sc := &a.Score
	b = append(b, `,"score":{`...)
	if sc.HasValue() {
		for _, f := range []struct {
			key, path string
			v         float64
		}{{`"value":`, "score.value", sc.Value}, {`,"threshold":`, "score.threshold", sc.Threshold}, {`,"ratio":`, "score.ratio", sc.Ratio}} {
			b = append(b, f.key...)
			if b, err = appendJSONFloat(b, f.v, f.path); err != nil {
				return nil, err
			}
		}
		b = append(b, ',')
	}
	b = append(b, `"band":`...)
	b = AppendJSONString(b, sc.Band)
	b = append(b, `,"verdict":`...)
	b = AppendJSONString(b, sc.Verdict)
	b = append(b, `,"falco_priority":`...)
	if b, err = appendJSONPriority(b, sc.FalcoPriority, "score.falco_priority"); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

func appendBaselineJSON(b []byte, a *Alert) ([]byte, error) {
	m := &a.Baseline
	if m.State == "" {
		return b, nil
	}
	var err error
	b = append(b, `,"baseline":{"state":`...)
	b = AppendJSONString(b, m.State)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, m.Events, 10)
	b = append(b, `,"distinct_transitions":`...)
	b = strconv.AppendUint(b, m.Transitions, 10)
	if !m.Since.IsZero() {
		b = append(b, `,"since":`...)
		if b, err = appendJSONTime(b, m.Since, "baseline.since"); err != nil {
			return nil, err
		}
	}
	if !m.Graduated.IsZero() {
		b = append(b, `,"graduated":`...)
		if b, err = appendJSONTime(b, m.Graduated, "baseline.graduated"); err != nil {
			return nil, err
		}
	}
	b = appendOptString(b, `,"inherited_from":`, m.Inherited)
	return append(b, '}'), nil
}

func appendAnomalyJSON(b []byte, a *Alert) ([]byte, error) {
	x := a.Anomaly
	if x == nil {
		return b, nil
	}
	var err error
	b = append(b, `,"anomaly":{"id":`...)
	b = AppendJSONString(b, x.ID)
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, x.Kind)
	b = append(b, `,"time":`...)
	if b, err = appendJSONTime(b, x.Time, "anomaly.time"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key, path string
		v         float64
	}{{`,"score":`, "anomaly.score", x.Score}, {`,"threshold":`, "anomaly.threshold", x.Threshold}, {`,"ratio":`, "anomaly.ratio", x.Ratio}} {
		b = append(b, f.key...)
		if b, err = appendJSONFloat(b, f.v, f.path); err != nil {
			return nil, err
		}
	}
	b = appendOptString(b, `,"process":`, x.Process)
	if x.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, x.PID, 10)
	}
	return append(b, '}'), nil
}

func appendExplanationJSON(b []byte, a *Alert) ([]byte, error) {
	x := a.Explain
	if x == nil {
		return b, nil
	}
	b = append(b, `,"explanation":{"window":`...)
	b = appendJSONStrings(b, x.Window)
	b = append(b, `,"transitions":`...)
	if x.Transitions == nil {
		b = append(b, "null"...)
		return append(b, '}'), nil
	}
	b = append(b, '[')
	for i := range x.Transitions {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendTransitionJSON(b, &x.Transitions[i]); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

func appendTransitionJSON(b []byte, t *Transition) ([]byte, error) {
	var err error
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
	return append(b, '}'), nil
}

// alertJSONSize estimates the length of a's JSON, so that MarshalJSON
// allocates once for a typical alert.
func alertJSONSize(a *Alert, falco []byte) int {
	n := 560 + len(falco) + len(a.ID) + len(a.Kind) + len(a.Event.Rule) + len(a.Reason)
	s := &a.Subject
	n += len(s.Image) + len(s.ImageSource) + len(s.ContainerID) + len(s.Container) + len(s.Namespace) +
		len(s.Pod) + len(s.Process) + len(s.Parent) + len(s.Hostname) + len(s.TreeRoot)
	n += len(a.Score.Band) + len(a.Score.Verdict) + len(a.Baseline.State) + len(a.Baseline.Inherited)
	if x := a.Anomaly; x != nil {
		n += 180 + len(x.ID) + len(x.Kind) + len(x.Process)
	}
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
// received, compacted when it spans lines, with invalid UTF-8 and unpaired
// surrogate escapes replaced (ValidUTF8JSON), or built with
// Event.EncodeJSON when there is no Raw (gRPC input without JSON).
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
	return ValidUTF8JSON(bytes.TrimSpace(raw)), nil
}

// ValidUTF8JSON returns b itself when it is valid UTF-8 and holds no \u
// escape of an unpaired UTF-16 surrogate, else a copy in which each invalid
// byte and each such escape is replaced by \ufffd.
//
// The Falco event is spliced into the alert as received, and a sensor can
// send a file name or a command line that is not UTF-8: encoding/json
// accepts it (it reads each bad byte as U+FFFD), strict parsers downstream
// do not. The copy reads, with encoding/json, exactly as b does, so nothing
// the event said changes; and a clean event, the usual case, costs one
// validation pass and no allocation.
func ValidUTF8JSON(b []byte) []byte {
	if utf8.Valid(b) && !mayHaveSurrogateEscape(b) {
		return b
	}
	return fixJSONText(b)
}

// mayHaveSurrogateEscape reports whether b holds the text of a \u escape
// in D800-DFFF. It does not know whether that backslash is itself escaped
// (\\ud800 is text, not an escape): fixJSONText decides, and leaves b
// alone when there is nothing to fix.
func mayHaveSurrogateEscape(b []byte) bool {
	for {
		i := bytes.Index(b, backslashU)
		if i < 0 || i+4 > len(b) {
			return false
		}
		if c, d := b[i+2], b[i+3]; (c == 'd' || c == 'D') && (('8' <= d && d <= '9') || ('a' <= d && d <= 'f') || ('A' <= d && d <= 'F')) {
			return true
		}
		b = b[i+2:]
	}
}

var backslashU = []byte(`\u`)

// fixJSONText is ValidUTF8JSON's slow path: it walks b, knowing which bytes
// are inside strings and which backslashes escape, and copies b only once
// something needs replacing. Outside strings JSON has no non-ASCII byte, so
// a bad one there is replaced too (the text was not JSON to start with).
func fixJSONText(b []byte) []byte {
	var out []byte // nil until the first replacement
	start := 0
	replace := func(i, n int) {
		if out == nil {
			out = make([]byte, 0, len(b)+len(b)/8+8)
		}
		out = append(out, b[start:i]...)
		out = append(out, `\ufffd`...)
		start = i + n
	}
	inString := false
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				replace(i, 1)
			}
			i += n
			continue
		}
		switch {
		case c == '"':
			inString = !inString
			i++
		case c == '\\' && inString && i+1 < len(b):
			if e := b[i+1]; e != 'u' {
				i++
				if e < utf8.RuneSelf {
					i++ // \" and \\ among them: the escaped byte neither quotes nor escapes
				} // else not JSON, and the byte is checked as UTF-8 above
				continue
			}
			r, ok := hexRuneAt(b, i+2)
			if !ok || !utf16.IsSurrogate(r) {
				i += 2 // the hex digits are plain ASCII
				continue
			}
			// A high surrogate followed by an escaped low one is one
			// rune; encoding/json reads any other surrogate escape as
			// U+FFFD, and the escape after it on its own.
			if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if r2, ok := hexRuneAt(b, i+8); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
					i += 12
					continue
				}
			}
			replace(i, 6)
			i += 6
		default:
			i++
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[start:]...)
}

// hexRuneAt reads the four hex digits of a \u escape at b[i:].
func hexRuneAt[T string | []byte](b T, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for j := i; j < i+4; j++ {
		c := b[j]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
