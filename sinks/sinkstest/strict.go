package sinkstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// DirtyAlert is FalcoAlert(i, image, rule) whose event carries bytes that
// are not UTF-8, as a sensor sends them for a file name or a command line
// that is not: in proc.cmdline, fd.name and the output, plus an escaped
// unpaired surrogate (valid to encoding/json, refused by strict parsers).
func DirtyAlert(i int, image, rule string) *scorer.Alert {
	a := FalcoAlert(i, image, rule)
	raw := bytes.Replace(a.Event.Raw, []byte(`"proc.cmdline":"bash -i"`),
		[]byte("\"proc.cmdline\":\"bash -i /tmp/\xff\xfe\xc3.sh\",\"fd.name\":\"/tmp/\\ud800x\xed\xa0\x80\""), 1)
	raw = bytes.Replace(raw, []byte("user=root"), []byte("user=r\xe2\x80oot"), 1)
	ev, err := scorer.DecodeJSON(raw)
	if err != nil || bytes.Equal(raw, a.Event.Raw) {
		panic(fmt.Sprintf("sinkstest: dirty fixture event: %v", err)) // fixture bug
	}
	a.Event = ev
	a.ID = scorer.AlertID(ev.Raw, a.Kind)
	return a
}

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
