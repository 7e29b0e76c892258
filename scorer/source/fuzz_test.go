package source

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/falco-scorer/falco-scorer/scorer"
)

var decodeReasons = map[string]bool{
	scorer.ReasonInvalidJSON: true, scorer.ReasonMissingField: true,
	scorer.ReasonWrongType: true, scorer.ReasonInvalidValue: true, scorer.ReasonLimitExceeded: true,
}

// FuzzDecodeJSON: the decoder never panics, fails only with a bounded
// reason, and what it accepts survives EncodeJSON (the gRPC path's Raw).
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{"rule":"r","priority":"info","time":"2026-11-24T12:00:00+02:00","output_fields":{"a":{"b":[1,2]},"n":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := scorer.DecodeJSON(data)
		if err != nil {
			var de *scorer.DecodeError
			if !errors.As(err, &de) || !decodeReasons[de.Reason] {
				t.Fatalf("DecodeJSON(%q) error = %v, want a *DecodeError with a known reason", data, err)
			}
			return
		}
		if !bytes.Equal(ev.Raw, data) {
			t.Fatalf("DecodeJSON(%q).Raw = %q, want the input", data, ev.Raw)
		}
		raw, err := ev.EncodeJSON()
		if err != nil {
			t.Fatalf("EncodeJSON(DecodeJSON(%q)) error = %v", data, err)
		}
		back, err := scorer.DecodeJSON(raw)
		if err != nil {
			// Known: years beyond 9999 format but do not parse as RFC 3339.
			if ev.Time.Year() > 9999 || ev.Time.Year() < 0 {
				return
			}
			t.Fatalf("DecodeJSON(EncodeJSON(DecodeJSON(%q))) error = %v (raw %s)", data, err, raw)
		}
		if d := cmp.Diff(ev, back, ignoreRaw...); d != "" {
			t.Fatalf("round trip of %q changed the event (-first +second):\n%s", data, d)
		}
	})
}

// FuzzNDJSON: the splitter never panics, accounts for every line and byte,
// and never accepts a line longer than the bound.
func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(sampleJSON+"\n\n{oops\r\n"+sampleJSON), uint16(4096))
	f.Add([]byte("\n\n\n"), uint16(1))
	f.Add([]byte(sampleJSON), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		maxLine := 1 + int(max)%2048
		var got int
		acc := acceptFunc(func(_ context.Context, _ string, evs []scorer.Event) error {
			for _, e := range evs {
				if len(e.Raw) > maxLine {
					t.Fatalf("accepted a line of %d bytes, bound %d", len(e.Raw), maxLine)
				}
			}
			got += len(evs)
			return nil
		})
		var last int64
		st, err := ReadNDJSON(context.Background(), bytes.NewReader(data), acc, NDJSONOptions{MaxLineBytes: maxLine, BatchSize: 3, Progress: func(n int64) {
			if n < last {
				t.Fatalf("progress went back from %d to %d", last, n)
			}
			last = n
		}})
		if err != nil {
			t.Fatalf("ReadNDJSON() error = %v", err)
		}
		wantLines := int64(bytes.Count(data, []byte{'\n'}))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			wantLines++
		}
		if st.Lines != wantLines || st.Lines != st.Blank+st.Events+st.Bad || st.Events != int64(got) {
			t.Fatalf("stats %+v for %d newline-separated lines and %d accepted events: lines must equal blank+events+bad", st, wantLines, got)
		}
		if st.Bytes != int64(len(data)) || last != int64(len(data)) {
			t.Fatalf("Bytes = %d, last progress = %d, want %d", st.Bytes, last, len(data))
		}
	})
}

// FuzzGzipBody: any gzip-encoded body gets 200 (exactly the events the
// decompressed body holds), 400 or 413, always with a JSON error body.
func FuzzGzipBody(f *testing.F) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(sampleJSON))
	_ = zw.Close()
	f.Add(zipped.Bytes(), false)
	f.Add(zipped.Bytes()[:20], false)
	f.Add([]byte(sampleJSON), true)
	nop := acceptFunc(func(context.Context, string, []scorer.Event) error { return nil })
	cfg := testHTTPConfig()
	cfg.MaxBodyBytes = 64 << 10
	h, err := NewHTTP(cfg, nop, nopLog(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		if ndjson {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		w := httptest.NewRecorder()
		h.Handler().ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("200 for a body that is not gzip: %v", err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("200 for a broken gzip body: %v", err)
			}
			var want []scorer.Event
			if ndjson {
				want, err = decodeLines(plain)
			} else {
				want, err = decodeOne(plain)
			}
			if err != nil {
				t.Fatalf("200 for a body that does not decode: %v", err)
			}
			var resp struct{ Accepted int }
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Accepted != len(want) {
				t.Fatalf("200 body %s, want accepted %d", w.Body, len(want))
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var eb errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Reason == "" {
				t.Fatalf("%d with body %q, want a JSON error with error and reason", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for a gzip body, want 200, 400 or 413", w.Code)
		}
	})
}
