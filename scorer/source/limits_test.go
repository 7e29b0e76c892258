package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/falco-scorer/falco-scorer/scorer"
)

const limitsEvent = `{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z","output_fields":{%s}}`

// reversedKeys returns n "key":"v" pairs in reverse key order.
func reversedKeys(n int) string {
	var sb strings.Builder
	for i := n - 1; i >= 0; i-- {
		if i != n-1 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"k%06d":"v"`, i)
	}
	return sb.String()
}

// TestHTTPRefusesEventsBeyondLimits: an event beyond the decoder's limits
// (issue 16: 60,000 reversed keys cost 8 s of CPU; a 1 MB image name got
// 200 and then failed in the store every flush) gets 400 with the
// limit_exceeded reason and an error naming the field and the limit, is
// counted, and never reaches the acceptor. The largest legal shape is
// still accepted.
func TestHTTPRefusesEventsBeyondLimits(t *testing.T) {
	rec := &recorder{}
	cfg := testHTTPConfig()
	cfg.MaxBodyBytes = 4 << 20
	h, err := NewHTTP(cfg, rec, nopLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	hugeImage := fmt.Sprintf(limitsEvent, `"container.image.repository":"`+strings.Repeat("i", 1<<20)+`","container.image.tag":"1"`)
	for _, tc := range []struct {
		name, ctype, body string
		wantMsg           []string
	}{
		{"1 MB image name", "application/json", hugeImage, []string{`"container.image.repository"`, "1048576 bytes", "1024"}},
		{"60k keys in reverse order", "application/json", fmt.Sprintf(limitsEvent, reversedKeys(60000)), []string{`"output_fields"`, "1024"}},
		{"key of 600 bytes", "application/json", fmt.Sprintf(limitsEvent, `"`+strings.Repeat("k", 600)+`":"v"`), []string{"key", "600 bytes", "512"}},
		{"value of 100 KiB", "application/json", fmt.Sprintf(limitsEvent, `"proc.cmdline":"`+strings.Repeat("c", 100<<10)+`"`), []string{`"proc.cmdline"`, "65536"}},
		{"nested 100 deep", "application/json", fmt.Sprintf(limitsEvent, `"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)), []string{"nested", "32"}},
		{"long rule", "application/json", `{"rule":"` + strings.Repeat("r", 2000) + `","priority":"Info","time":"2026-11-24T12:00:00Z"}`, []string{`"rule"`, "1024"}},
		{"ndjson line with a long pod name", "application/x-ndjson", sampleJSON + "\n" + fmt.Sprintf(limitsEvent, `"k8s.pod.name":"`+strings.Repeat("p", 5000)+`"`) + "\n",
			[]string{"line 2:", `"k8s.pod.name"`, "1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := value(h.m.rejected.WithLabelValues(SourceHTTP, scorer.ReasonLimitExceeded))
			req := httpNewRequest("POST", "/", "", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			w := httptestDo(h, req)
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("POST / = %d, body %.200q is not a JSON error: %v", w.Code, w.Body, err)
			}
			if w.Code != http.StatusBadRequest || body.Reason != scorer.ReasonLimitExceeded {
				t.Errorf("POST / = %d reason %q, want 400 reason %q", w.Code, body.Reason, scorer.ReasonLimitExceeded)
			}
			for _, s := range tc.wantMsg {
				if !strings.Contains(body.Error, s) {
					t.Errorf("error %q does not contain %q", body.Error, s)
				}
			}
			if len(body.Error) > 400 {
				t.Errorf("error is %d bytes, want the offending value left out", len(body.Error))
			}
			if got := value(h.m.rejected.WithLabelValues(SourceHTTP, scorer.ReasonLimitExceeded)) - before; got != 1 {
				t.Errorf("events_rejected_total{reason=limit_exceeded} grew by %v, want 1", got)
			}
		})
	}
	if n := len(rec.got()); n != 0 {
		t.Fatalf("acceptor got %d events, want none", n)
	}

	// At the limits: accepted, fields sorted.
	req := httpNewRequest("POST", "/", "", strings.NewReader(fmt.Sprintf(limitsEvent, reversedKeys(scorer.MaxFields))))
	req.Header.Set("Content-Type", "application/json")
	if w := httptestDo(h, req); w.Code != http.StatusOK {
		t.Fatalf("POST of %d reversed keys = %d %s, want 200", scorer.MaxFields, w.Code, w.Body)
	}
	got := rec.got()
	if len(got) != 1 || len(got[0].Fields) != scorer.MaxFields || got[0].Fields[0].Name != "k000000" {
		t.Errorf("accepted %d events, want 1 with %d fields sorted", len(got), scorer.MaxFields)
	}
}

// TestNDJSONRefusesEventsBeyondLimits: the NDJSON input counts such a line
// as bad with the limit_exceeded reason and goes on.
func TestNDJSONRefusesEventsBeyondLimits(t *testing.T) {
	rec := &recorder{}
	in := sampleJSON + "\n" + fmt.Sprintf(limitsEvent, reversedKeys(60000)) + "\n" + sampleJSON + "\n"
	st, err := ReadNDJSON(context.Background(), strings.NewReader(in), rec, NDJSONOptions{MaxLineBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 2 || st.Bad != 1 || len(st.Errors) != 1 || st.Errors[0].Reason != scorer.ReasonLimitExceeded || st.Errors[0].Line != 2 {
		t.Errorf("ReadNDJSON() stats %+v, want 2 events and line 2 bad with reason %s", st, scorer.ReasonLimitExceeded)
	}
}

// TestGRPCRefusesEventsBeyondLimits: the gRPC conversions (protowire and
// client-go's generated code) refuse the same events with the same reason.
func TestGRPCRefusesEventsBeyondLimits(t *testing.T) {
	many := map[string]string{}
	for i := range 60000 {
		many[fmt.Sprintf("k%06d", i)] = "v"
	}
	withFields := func(f map[string]string) *outputs.Response {
		r := sampleResponse()
		r.OutputFields = f
		return r
	}
	for _, tc := range []struct {
		name    string
		res     *outputs.Response
		wantMsg string
	}{
		{"1 MB image name", withFields(map[string]string{"container.image.repository": strings.Repeat("i", 1<<20)}), `"container.image.repository"`},
		{"60k fields", withFields(many), `"output_fields"`},
		{"value of 100 KiB", withFields(map[string]string{"proc.cmdline": strings.Repeat("c", 100<<10)}), `"proc.cmdline"`},
		{"long hostname", func() *outputs.Response { r := sampleResponse(); r.Hostname = strings.Repeat("h", 2000); return r }(), `"hostname"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			var w wireResponse
			if err := w.decode(b); err != nil {
				t.Fatalf("decode() = %v, want a well-formed message", err)
			}
			_, werr := w.event()
			_, gerr := EventFromResponse(tc.res)
			for name, err := range map[string]error{"wire": werr, "generated": gerr} {
				var de *scorer.DecodeError
				if !errors.As(err, &de) || de.Reason != scorer.ReasonLimitExceeded || !strings.Contains(de.Msg, tc.wantMsg) {
					t.Errorf("%s conversion error = %.300v, want reason %s naming %s", name, err, scorer.ReasonLimitExceeded, tc.wantMsg)
				}
			}
		})
	}
}

// TestGRPCWireManyNA: "<NA>" entries unset a name without a search each
// (they were deleted one by one, quadratic in the entries), and a later
// value of the name still wins.
func TestGRPCWireManyNA(t *testing.T) {
	var msg []byte
	entry := func(k, v string) {
		b, err := proto.Marshal(&outputs.Response{OutputFields: map[string]string{k: v}})
		if err != nil {
			t.Fatal(err)
		}
		msg = append(msg, b...) // repeated map fields concatenate
	}
	for i := range 500 {
		entry(fmt.Sprintf("k%03d", i), "v")
		entry(fmt.Sprintf("k%03d", i), scorer.NA)
	}
	entry("k007", "back")
	base, err := proto.Marshal(numberedResponse(1))
	if err != nil {
		t.Fatal(err)
	}
	var w wireResponse
	if err := w.decode(append(bytes.Clone(base), msg...)); err != nil {
		t.Fatal(err)
	}
	ev, err := w.event()
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Fields) != 3 || ev.Fields.Value("k007") != "back" {
		t.Errorf("fields = %v, want evt.type, k007=back and proc.pid", ev.Fields)
	}
}
