package scorertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// StrictJSON returns why b would fail a strict JSON parser (RFC 8259 text
// in RFC 3629 UTF-8, as Rust's serde_json reads it), or nil: not one JSON
// value, invalid UTF-8 anywhere, or a \u escape of an unpaired UTF-16
// surrogate. json.Valid alone accepts the last two.
func StrictJSON(b []byte) error {
	if !json.Valid(b) {
		return errors.New("not valid JSON")
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d (%q)", i, b[i:min(len(b), i+4)])
		}
		i += n
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hexRune(b[i+2 : i+6])
			i += 5
			if !utf16.IsSurrogate(r) {
				continue
			}
			if r >= 0xdc00 || i+7 > len(b) || b[i+1] != '\\' || b[i+2] != 'u' ||
				utf16.DecodeRune(r, hexRune(b[i+3:i+7])) == utf8.RuneError {
				return fmt.Errorf("unpaired surrogate escape at byte %d", i-5)
			}
			i += 6
		}
	}
	return nil
}

// hexRune reads four hex digits that json.Valid already checked.
func hexRune(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c <= '9':
			r = r*16 + rune(c-'0')
		case c >= 'a':
			r = r*16 + rune(c-'a'+10)
		default:
			r = r*16 + rune(c-'A'+10)
		}
	}
	return r
}

// ZeroValues lists the paths in v (decoded JSON) that hold a zero value
// standing for "unknown": null, "", 0, false, or the zero time. Under
// "falco" (Falco's own event, forwarded as received) nothing is checked;
// explanation.transitions[].history_seen may be 0 (a history the baseline
// never saw).
func ZeroValues(v any) []string {
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			out = append(out, path+" = null")
		case string:
			if x == "" || strings.HasPrefix(x, "0001-01-01") {
				out = append(out, fmt.Sprintf("%s = %q", path, x))
			}
		case float64:
			if x == 0 && !strings.HasSuffix(path, ".history_seen") {
				out = append(out, path+" = 0")
			}
		case bool:
			if !x {
				out = append(out, path+" = false")
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			for k, e := range x {
				if path == "" && k == "falco" {
					continue
				}
				walk(strings.TrimPrefix(path+"."+k, "."), e)
			}
		}
	}
	walk("", v)
	return out
}
