package scorer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

func TestStrictJSONChecker(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{`{"a":"é\u00e9\ud83d\ude00\\ud800"}`, true},
		{"{\"a\":\"\xff\"}", false},
		{`{"a":"\ud800"}`, false},
		{`{"a":"\udc00\ud800"}`, false},
		{`{"a":"\ud800\u0041"}`, false},
		{`{"a":"x"`, false},
	} {
		if err := scorertest.StrictJSON([]byte(tt.in)); (err == nil) != tt.ok {
			t.Errorf("scorertest.StrictJSON(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}

// dirtyEvents are Falco events as a sensor can send them: a file name or a
// command line with bytes that are not UTF-8, in plain and in escaped
// strings, in keys and tags, on one line and on several.
var dirtyEvents = []string{
	"{\"output\":\"open /tmp/\xff\xfe.sh\",\"priority\":\"Warning\",\"rule\":\"Write below tmp\",\"time\":\"2026-11-24T12:00:00Z\"," +
		"\"output_fields\":{\"fd.name\":\"/tmp/\xff\xfe.sh\",\"proc.cmdline\":\"sh -c \\\"echo \xc3\\\" \xe2\x80\",\"proc.pid\":7}}",
	"{\"rule\":\"r\xed\xa0\x80\",\"priority\":\"Notice\",\"time\":\"2026-11-24T12:00:00Z\",\"tags\":[\"\xf0\x9f\x98\",\"ok\"]," +
		"\"output_fields\":{\"k\xc0\xaf\":\"v\",\"evt.type\":\"execve\"}}",
	"{\n  \"rule\": \"r\",\r\n  \"priority\": \"Notice\",\n  \"time\": \"2026-11-24T12:00:00Z\",\n  \"output\": \"a\xffb\"\n}\n",
	`{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","output":"lone \ud800 low \udc00 pair \ud83d\ude00 high+x \ud83d\u0041 \\ud800"}`,
}

// TestAlertJSONIsStrict: whatever bytes the Falco event carried, the alert
// JSON (the Kafka value, the stdout line, the outbox payload) is strict
// JSON, and it reads back as the same event (each bad byte as U+FFFD, as
// encoding/json decodes it).
func TestAlertJSONIsStrict(t *testing.T) {
	for i, raw := range dirtyEvents {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ev, err := DecodeJSON([]byte(raw))
			if err != nil {
				t.Fatalf("DecodeJSON(%q) = %v", raw, err)
			}
			a := benchAlert(t)
			a.Event = ev
			a.ID = AlertID(ev.Raw, a.Kind)
			a.Subject.Image = "img\xff"
			b, err := a.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON() = %v", err)
			}
			if err := scorertest.StrictJSON(b); err != nil {
				t.Fatalf("MarshalJSON() = %q: %v", b, err)
			}
			var back Alert
			if err := back.UnmarshalJSON(b); err != nil {
				t.Fatalf("UnmarshalJSON(MarshalJSON()) = %v", err)
			}
			back.Event.Raw, ev.Raw = nil, nil
			if !reflect.DeepEqual(back.Event, ev) {
				t.Errorf("event read back = %+v, want %+v", back.Event, ev)
			}
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(raw), &want); err != nil {
				t.Fatal(err)
			}
			if g := got.(map[string]any)["falco"]; !reflect.DeepEqual(g, want) {
				t.Errorf("falco = %v, want what encoding/json reads from the event: %v", g, want)
			}
		})
	}
}

// TestValidUTF8JSON compares ValidUTF8JSON with encoding/json's reading on
// hand-picked cases: the result reads as the input does, passes a strict
// parser, and is the input itself when that was already strict.
func TestValidUTF8JSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{`{"a":"\u00e9\u2028\ud83d\ude00 \\ud800 \\\ud800"}`, `{"a":"\u00e9\u2028\ud83d\ude00 \\ud800 \\\ufffd"}`},
		{"{\"a\":\"\xff\"}", `{"a":"\ufffd"}`},
		{"{\"\xe2\x80\":\"x\xed\xa0\x80y\"}", `{"\ufffd\ufffd":"x\ufffd\ufffd\ufffdy"}`},
		{`["\ud800","\uDC00x","\ud83d\u0041","\ud83d\ud83d\ude00","\ud83d"]`,
			`["\ufffd","\ufffdx","\ufffd\u0041","\ufffd\ud83d\ude00","\ufffd"]`},
		{"[\"\\\"\xff\\\\\",\"é€😀\"]", "[\"\\\"\\ufffd\\\\\",\"é€😀\"]"},
	}
	for _, tt := range cases {
		in := []byte(tt.in)
		got := ValidUTF8JSON(in)
		if string(got) != tt.want {
			t.Errorf("ValidUTF8JSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkValidUTF8JSON(t, in, got)
	}
}

// checkValidUTF8JSON checks out = ValidUTF8JSON(in) against encoding/json.
func checkValidUTF8JSON(t *testing.T, in, out []byte) {
	t.Helper()
	if !json.Valid(in) {
		if !utf8.Valid(out) {
			t.Fatalf("ValidUTF8JSON(%q) = %q, invalid UTF-8", in, out)
		}
		return
	}
	if err := scorertest.StrictJSON(out); err != nil {
		t.Fatalf("ValidUTF8JSON(%q) = %q: %v", in, out, err)
	}
	if scorertest.StrictJSON(in) == nil && (len(in) != len(out) || (len(in) > 0 && &in[0] != &out[0])) {
		t.Fatalf("ValidUTF8JSON(%q) = %q, want the input itself (already strict)", in, out)
	}
	var a, b any
	errA, errB := json.Unmarshal(in, &a), json.Unmarshal(out, &b)
	if (errA == nil) != (errB == nil) || !reflect.DeepEqual(a, b) {
		t.Fatalf("encoding/json reads ValidUTF8JSON(%q) = %q as %#v (%v), want %#v (%v)", in, out, b, errB, a, errA)
	}
}

func FuzzValidUTF8JSON(f *testing.F) {
	f.Add([]byte(sample))
	for _, s := range dirtyEvents {
		f.Add([]byte(s))
	}
	f.Add([]byte(`"\ud800\\u`))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkValidUTF8JSON(t, in, ValidUTF8JSON(in))
	})
}

// FuzzAlertPayloadStrict builds alerts from arbitrary bytes, as events and
// as the scorer's own strings: every alert that marshals is strict JSON,
// and its header decodes.
func FuzzAlertPayloadStrict(f *testing.F) {
	f.Add([]byte(sample), "nginx", "c", "r")
	for _, s := range dirtyEvents {
		f.Add([]byte(s), "img\xff", "\xed\xa0\x80", `\ud800`)
	}
	f.Fuzz(func(t *testing.T, raw []byte, image, container, reason string) {
		ev, err := DecodeJSON(raw)
		if err != nil {
			return
		}
		a := benchAlert(t)
		a.Event, a.ID = ev, AlertID(ev.Raw, a.Kind)
		a.Subject.Image, a.Subject.ContainerID, a.Reason = image, container, reason
		a.Explain.Window = strings.Fields(reason)
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON() of a decoded event = %v", err)
		}
		if err := scorertest.StrictJSON(b); err != nil {
			t.Fatalf("MarshalJSON() of %q = %q: %v", raw, b, err)
		}
		if _, err := DecodeAlertHeader(b); err != nil {
			t.Fatalf("DecodeAlertHeader(%q) = %v", b, err)
		}
	})
}

// TestValidUTF8JSONDoesNotAllocateForCleanInput: the fast path of every
// emitted alert.
func TestValidUTF8JSONDoesNotAllocateForCleanInput(t *testing.T) {
	clean := []byte(benchAlert(t).Event.Raw)
	if n := testing.AllocsPerRun(100, func() { _ = ValidUTF8JSON(clean) }); n != 0 {
		t.Errorf("ValidUTF8JSON(clean event) allocates %v times, want 0", n)
	}
	a := benchAlert(t)
	before := testing.AllocsPerRun(100, func() { _, _ = a.MarshalJSON() })
	if before != 1 {
		t.Errorf("MarshalJSON() allocates %v times, want 1", before)
	}
}
