package scorer

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// headerJSON holds the alert fields DecodeAlertHeader reads: decoding into
// it with encoding/json is the reference DecodeAlertHeader must match.
type headerJSON struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Priority Priority  `json:"priority"`
	Rule     string    `json:"rule"`
	Subject  struct {
		Image       string `json:"image"`
		ContainerID string `json:"container_id"`
	} `json:"subject"`
	Score struct {
		Value *float64 `json:"value"`
		Band  string   `json:"band"`
	} `json:"score"`
	Falco json.RawMessage `json:"falco"`
}

// decodeAlertHeaderReference decodes the header with encoding/json.
func decodeAlertHeaderReference(b []byte) (AlertHeader, error) {
	var w headerJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return AlertHeader{}, err
	}
	if len(w.Falco) == 0 || w.Falco[0] != '{' {
		return AlertHeader{}, errors.New("falco is not an object")
	}
	h := AlertHeader{ID: w.ID, Kind: w.Kind, Time: w.Time, Priority: w.Priority, Rule: w.Rule,
		Image: w.Subject.Image, ContainerID: w.Subject.ContainerID, Band: w.Score.Band}
	if w.Score.Value != nil {
		h.Score, h.Scored = *w.Score.Value, true
	}
	return h, nil
}

func headersEqual(a, b AlertHeader) bool {
	_, aoff := a.Time.Zone()
	_, boff := b.Time.Zone()
	return a.ID == b.ID && a.Kind == b.Kind && a.Time.Equal(b.Time) && aoff == boff && a.Priority == b.Priority &&
		a.Rule == b.Rule && a.Image == b.Image && a.ContainerID == b.ContainerID &&
		math.Float64bits(a.Score) == math.Float64bits(b.Score) && a.Scored == b.Scored && a.Band == b.Band
}

// checkHeaderMatchesReference fails t unless DecodeAlertHeader and the
// encoding/json reference agree on b, and unless every alert UnmarshalJSON
// accepts has a header.
func checkHeaderMatchesReference(t *testing.T, b []byte) {
	t.Helper()
	got, err := DecodeAlertHeader(b)
	want, refErr := decodeAlertHeaderReference(b)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("DecodeAlertHeader(%q) error = %v, reference error = %v", b, err, refErr)
	}
	if err != nil {
		var a Alert
		if a.UnmarshalJSON(b) == nil {
			t.Fatalf("DecodeAlertHeader(%q) error = %v, but UnmarshalJSON accepts it", b, err)
		}
		return
	}
	if !headersEqual(got, want) {
		t.Fatalf("DecodeAlertHeader(%q) =\n%+v\nreference:\n%+v", b, got, want)
	}
}

func TestDecodeAlertHeader(t *testing.T) {
	a := benchAlert(t)
	p, err := a.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	h, err := DecodeAlertHeader(p)
	if err != nil {
		t.Fatalf("DecodeAlertHeader(MarshalJSON()) error = %v", err)
	}
	if !headersEqual(h, a.Header()) {
		t.Errorf("DecodeAlertHeader(MarshalJSON()) = %+v, want %+v", h, a.Header())
	}
	if h.Rule != "Outbound Connection to C2 Servers" || h.Score != 23.718492031 || h.Band != "critical" {
		t.Errorf("DecodeAlertHeader() = %+v, want the fixture's rule, score and band", h)
	}
}

func TestDecodeAlertHeaderCases(t *testing.T) {
	const falco = `"falco":{"rule":"r"}`
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"minimal", `{` + falco + `}`, true},
		{"case-insensitive keys", `{"ID":"x","KİND":"k","\u212aind":"k2","Subject":{"IMAGE":"i","container_ID":"c"},"SCORE":{"Value":1e3},` + falco + `}`, true},
		{"duplicates: last wins, objects merge, null keeps", `{"id":"a","id":"b","id":null,"subject":{"image":"i"},"subject":{"container_id":"c"},"subject":null,` + falco + `}`, true},
		{"unread fields not checked", `{"explanation":5,"baseline":"x","score":{"ratio":"y","value":2},` + falco + `}`, true},
		{"escapes and invalid UTF-8", "{\"rule\":\"a\\u00e9\\ud83d\\ude00\\ud800\xff\\n\"," + falco + `}`, true},
		{"offset time", `{"time":"2026-11-24T12:00:00.5+05:30",` + falco + `}`, true},
		{"truncated", `{"id":"a",` + falco, false},
		{"trailing garbage", `{` + falco + `} x`, false},
		{"not an object", `["a"]`, false},
		{"null", `null`, false},
		{"no falco", `{"id":"a"}`, false},
		{"falco null", `{"falco":null}`, false},
		{"falco string", `{"falco":"{}"}`, false},
		{"later falco null", `{` + falco + `,"falco":null}`, false},
		{"id number", `{"id":1,` + falco + `}`, false},
		{"subject array", `{"subject":[],` + falco + `}`, false},
		{"image bool", `{"subject":{"image":true},` + falco + `}`, false},
		{"score string", `{"score":{"value":"1"},` + falco + `}`, false},
		{"score out of range", `{"score":{"value":1e400},` + falco + `}`, false},
		{"bad time", `{"time":"2026-11-24 12:00:00Z",` + falco + `}`, false},
		{"time number", `{"time":5,` + falco + `}`, false},
		{"bad priority", `{"priority":"loud",` + falco + `}`, false},
		{"priority number", `{"priority":4,` + falco + `}`, false},
		{"invalid JSON in skipped value", `{"explanation":[1,},` + falco + `}`, false},
		{"invalid JSON inside falco", `{"falco":{"rule":}}`, false},
		// encoding/json allows 10000 levels of nesting, counted from the top.
		{"nesting 10000", `{"falco":{"a":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`, true},
		{"nesting 10001", `{"falco":{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkHeaderMatchesReference(t, []byte(c.in))
			if _, err := DecodeAlertHeader([]byte(c.in)); (err == nil) != c.ok {
				t.Errorf("DecodeAlertHeader(%.200s) error = %v, want ok = %v", c.in, err, c.ok)
			}
		})
	}
}

func TestDecodeAlertHeaderOfRandomAlerts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		a := randAlert(r)
		p, err := a.MarshalJSON()
		if err != nil {
			continue
		}
		checkHeaderMatchesReference(t, p)
		// A cut payload is never a header.
		cut := p[:r.IntN(len(p))]
		if _, err := DecodeAlertHeader(cut); err == nil {
			t.Fatalf("DecodeAlertHeader(%q) = nil error for a truncated alert", cut)
		}
	}
}

func BenchmarkDecodeAlertHeader(b *testing.B) {
	p, err := benchAlert(b).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAlertHeader(p); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeAlertHeader checks DecodeAlertHeader against encoding/json
// decoding the same fields, and that it accepts every alert UnmarshalJSON
// accepts.
func FuzzDecodeAlertHeader(f *testing.F) {
	p, err := benchAlert(f).MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add([]byte(strings.Replace(string(p), `"id"`, `"Id"`, 1)))
	for _, s := range []string{
		`{"falco":{}}`, `{"falco":{},"falco":null}`, `{"subject":{"image":"a"},"subject":{"container_id":"b"},"falco":{}}`,
		`{"score":{"value":-0,"band":"\u2028"},"time":"2026-11-24T12:00:00-23:59","falco":{}}`,
		`{"score":{"value":1e-400},"falco":{}}`, `{"time":"\u0032026-11-24T12:00:00Z","falco":{}}`,
		`{"score":{"value":1,"value":null},"falco":{}}`, `{"score":{"value":null,"value":2},"falco":{}}`,
		`{"priority":" info ","falco":{}}`, `{"priority":null,"falco":{}}`, "{\"\xffid\":1,\"falco\":{}}",
		`{"ſcore":{"value":1},"falco":{}}`, `[]`, ``, `{`, `{"falco":{}} `, `{"falco":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkHeaderMatchesReference(t, b)
	})
}
