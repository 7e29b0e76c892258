package scorer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

const sample = `{"hostname":"node-1","output":"shell","priority":"Notice","rule":"Terminal shell in container",
"source":"syscall","tags":["T1059","container"],"time":"2026-11-24T12:00:00.000000001Z",
"output_fields":{"container.id":"4e5c1a2b3c4d","container.image.repository":"docker.io/library/nginx",
"container.image.tag":"1.27","evt.type":"execve","proc.pid":4242,"user.uid":0,"fd.name":null,"k8s.ns.name":"<NA>",
"evt.is_open_read":true,"k8s.pod.name":"web-7d9f"}}`

func TestDecodeJSON(t *testing.T) {
	ev, err := DecodeJSON([]byte(sample))
	if err != nil {
		t.Fatalf("DecodeJSON(sample) error = %v", err)
	}
	want := map[string]string{
		"container.id": "4e5c1a2b3c4d", "container.image.repository": "docker.io/library/nginx",
		"container.image.tag": "1.27", "evt.type": "execve", "proc.pid": "4242", "user.uid": "0",
		"evt.is_open_read": "true", "k8s.pod.name": "web-7d9f",
	}
	if len(ev.Fields) != len(want) {
		t.Errorf("Fields = %v, want %v (null and <NA> dropped)", ev.Fields, want)
	}
	for k, v := range want {
		if ev.Fields.Value(k) != v {
			t.Errorf("Fields[%q] = %q, want %q", k, ev.Fields.Value(k), v)
		}
	}
	if ev.Priority != PriorityNotice || ev.Rule != "Terminal shell in container" || ev.Time.Nanosecond() != 1 {
		t.Errorf("DecodeJSON header = %v %q %v", ev.Priority, ev.Rule, ev.Time)
	}
	if string(ev.Raw) != sample {
		t.Errorf("Raw not kept verbatim")
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	cases := []struct {
		name, in, reason, mention string
	}{
		{"not json", `{"rule":`, ReasonInvalidJSON, "invalid JSON"},
		{"array", `[1,2]`, ReasonWrongType, "JSON object"},
		{"no rule", `{"priority":"Notice","time":"2026-11-24T12:00:00Z"}`, ReasonMissingField, `"rule"`},
		{"no priority", `{"rule":"r","time":"2026-11-24T12:00:00Z"}`, ReasonMissingField, `"priority"`},
		{"no time", `{"rule":"r","priority":"Notice"}`, ReasonMissingField, `"time"`},
		{"bad priority", `{"rule":"r","priority":"Loud","time":"2026-11-24T12:00:00Z"}`, ReasonInvalidValue, "Loud"},
		{"bad time", `{"rule":"r","priority":"Notice","time":"yesterday"}`, ReasonInvalidValue, "yesterday"},
		{"rule wrong type", `{"rule":5,"priority":"Notice","time":"2026-11-24T12:00:00Z"}`, ReasonWrongType, "rule"},
		{"tags wrong type", `{"rule":"r","priority":"Notice","time":"2026-11-24T12:00:00Z","tags":"x"}`, ReasonWrongType, "tags"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeJSON([]byte(c.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeJSON(%s) error = %v, want *DecodeError", c.in, err)
			}
			if de.Reason != c.reason || !strings.Contains(de.Msg, c.mention) {
				t.Errorf("DecodeJSON(%s) = %s %q, want reason %s mentioning %q", c.in, de.Reason, de.Msg, c.reason, c.mention)
			}
		})
	}
}

func TestEncodeJSONRoundTrip(t *testing.T) {
	ev, err := DecodeJSON([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.EncodeJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeJSON(b)
	if err != nil {
		t.Fatalf("DecodeJSON(EncodeJSON()) error = %v", err)
	}
	back.Raw, ev.Raw = nil, nil
	if !back.Time.Equal(ev.Time) || back.Rule != ev.Rule || len(back.Fields) != len(ev.Fields) || back.Fields.Value("proc.pid") != "4242" {
		t.Errorf("round trip = %+v, want %+v", back, ev)
	}
}

func TestParsePriority(t *testing.T) {
	for in, want := range map[string]Priority{
		"emergency": PriorityEmergency, "ALERT": PriorityAlert, "Critical": PriorityCritical, "error": PriorityError,
		"Warning": PriorityWarning, "notice": PriorityNotice, "Informational": PriorityInformational,
		"info": PriorityInformational, "DEBUG": PriorityDebug,
	} {
		got, err := ParsePriority(in)
		if err != nil || got != want {
			t.Errorf("ParsePriority(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParsePriority("loud"); err == nil {
		t.Error("ParsePriority(loud) = nil error, want error")
	}
	if got := PriorityNotice.Raise(2); got != PriorityError {
		t.Errorf("Notice.Raise(2) = %v, want Error", got)
	}
	if got := PriorityAlert.Raise(5); got != PriorityEmergency {
		t.Errorf("Alert.Raise(5) = %v, want Emergency", got)
	}
}

func TestImageKey(t *testing.T) {
	mk := func(f map[string]string) *Event { return &Event{Fields: FieldsOf(f), Time: time.Now()} }
	cases := []struct {
		name, mode string
		fields     map[string]string
		want, src  string
	}{
		{"digest wins", ImageKeyDigest, map[string]string{"container.image.repository": "nginx", "container.image.tag": "1", "container.image.digest": "sha256:ab"}, "nginx@sha256:ab", "digest"},
		{"tag mode ignores digest", ImageKeyTag, map[string]string{"container.image.repository": "nginx", "container.image.tag": "1", "container.image.digest": "sha256:ab"}, "nginx:1", "tag"},
		{"repository mode", ImageKeyRepository, map[string]string{"container.image.repository": "nginx", "container.image.tag": "1"}, "nginx", "repository"},
		{"no tag is latest", ImageKeyDigest, map[string]string{"container.image.repository": "nginx"}, "nginx:latest", "tag"},
		{"old container.image with registry port", ImageKeyDigest, map[string]string{"container.image": "reg:5000/app:2.1"}, "reg:5000/app:2.1", "tag"},
		{"nothing", ImageKeyDigest, map[string]string{}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, src := ImageKey(mk(c.fields), c.mode)
			if got != c.want || src != c.src {
				t.Errorf("imageKey() = %q, %q, want %q, %q", got, src, c.want, c.src)
			}
		})
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	in := []byte(sample)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAlertJSONKeepsFalcoEventAndStaysOneLine(t *testing.T) {
	pretty := "{\n  \"rule\": \"r\",\n  \"priority\": \"Notice\",\n  \"time\": \"2026-11-24T12:00:00Z\",\n  \"output_fields\": {\"proc.pid\": 1.50}\n}"
	oneLine := strings.ReplaceAll(sample, "\n", "")
	for _, raw := range []string{oneLine, pretty} {
		ev, err := DecodeJSON([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		a := &Alert{ID: "x", Kind: KindFalco, Event: ev, Priority: PriorityNotice}
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON() error = %v", err)
		}
		if bytes.ContainsAny(b, "\r\n") {
			t.Errorf("alert JSON spans lines: %s", b)
		}
		var back Alert
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatalf("UnmarshalJSON(MarshalJSON()) error = %v: %s", err, b)
		}
		if back.Event.Rule != ev.Rule || back.Event.Fields.Value("proc.pid") != ev.Fields.Value("proc.pid") || back.ID != "x" {
			t.Errorf("round trip = %+v, want the original event", back)
		}
		if raw == oneLine && !bytes.Contains(b, []byte(`"falco":`+oneLine+`}`)) {
			t.Errorf("single-line Falco event not kept verbatim: %s", b)
		}
	}
}

func BenchmarkAlertRoundTrip(b *testing.B) {
	ev, err := DecodeJSON([]byte(strings.ReplaceAll(sample, "\n", "")))
	if err != nil {
		b.Fatal(err)
	}
	a := &Alert{ID: "x", Kind: KindAnomaly, Event: ev, Priority: PriorityWarning,
		Explain: &Explanation{Window: make([]string, 60), Transitions: make([]Transition, 5)}}
	b.ReportAllocs()
	for b.Loop() {
		p, err := a.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		var back Alert
		if err := back.UnmarshalJSON(p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeJSONNestingLimit: the nesting limit counts every open
// container, the event object included, as encoding/json counts for its own
// (much larger) limit.
func TestDecodeJSONNestingLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		prefix string // containers open before the skipped value
		suffix string
		open   int
	}{
		{"top-level field", `{"time":"2026-11-25T10:00:00Z","x":`, `}`, 1},
		{"output field", `{"time":"2026-11-25T10:00:00Z","output_fields":{"x":`, `}}`, 2},
		{"tag", `{"time":"2026-11-25T10:00:00Z","tags":[`, `]}`, 2},
	} {
		for _, extra := range []int{0, 1} {
			n := MaxNesting - tt.open + extra
			in := tt.prefix + strings.Repeat("[", n) + strings.Repeat("]", n) + tt.suffix
			_, err := DecodeJSON([]byte(in))
			var de *DecodeError
			refused := errors.As(err, &de) && de.Reason == ReasonLimitExceeded
			if refused != (extra == 1) {
				t.Errorf("%s, %d levels: DecodeJSON err = %v, want a limit error: %v", tt.name, n+tt.open, err, extra == 1)
			}
		}
	}
}

// TestImageKeyFromReference: container.image alone, with a registry port, a
// tag and/or a digest.
func TestImageKeyFromReference(t *testing.T) {
	for _, tc := range []struct{ ref, want, source string }{
		{"reg:5000/app:1.2", "reg:5000/app:1.2", "tag"},
		{"reg:5000/app", "reg:5000/app:latest", "tag"},
		{"reg:5000/app@sha256:abc", "reg:5000/app@sha256:abc", "digest"},
		{"reg:5000/app:1.2@sha256:abc", "reg:5000/app@sha256:abc", "digest"},
	} {
		ev := &Event{Fields: FieldsOf(map[string]string{"container.image": tc.ref})}
		if key, source := ImageKey(ev, ImageKeyDigest); key != tc.want || source != tc.source {
			t.Errorf("imageKey(container.image=%q) = %q, %q; want %q, %q", tc.ref, key, source, tc.want, tc.source)
		}
	}
}
