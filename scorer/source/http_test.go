package source

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
)

// startHTTP runs h until the test ends and returns its base URL.
func startHTTP(t *testing.T, h *HTTP, scheme string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("HTTP.Run() = %v, want nil", err)
		}
	})
	scorertest.WaitFor(t, "http listening", h.Ready)
	return scheme + "://" + h.Addr()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHTTPRejections(t *testing.T) {
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	cfg := testHTTPConfig()
	cfg.MaxBodyBytes = 4096
	h, err := NewHTTP(cfg, rec, nopLog(), reg)
	if err != nil {
		t.Fatal(err)
	}
	base := startHTTP(t, h, "http")
	zipped := gz(t, []byte(sampleJSON))
	bomb := gz(t, bytes.Repeat([]byte(" "), 1<<20)) // ~1 KiB compressed, 1 MiB decompressed

	tests := []struct {
		name, method, ctype, encoding string
		body                          []byte
		wantCode                      int
		wantReason                    string // also the metric label
		wantMsg                       string // substring of the error
	}{
		{"malformed json", "POST", "application/json", "", []byte(`{"rule": "x",`), 400, scorer.ReasonInvalidJSON, "invalid JSON"},
		{"not an object", "POST", "application/json", "", []byte(`[1,2]`), 400, scorer.ReasonWrongType, "JSON object"},
		{"wrong type", "POST", "application/json", "", []byte(`{"rule":"r","priority":5,"time":"2026-11-24T12:00:00Z"}`), 400, scorer.ReasonWrongType, `"priority"`},
		{"missing field", "POST", "", "", []byte(`{"priority":"Notice","time":"2026-11-24T12:00:00Z"}`), 400, scorer.ReasonMissingField, `"rule"`},
		{"bad priority", "POST", "text/plain", "", []byte(`{"rule":"r","priority":"Loud","time":"2026-11-24T12:00:00Z"}`), 400, scorer.ReasonInvalidValue, "unknown priority"},
		{"empty body", "POST", "application/json", "", nil, 400, scorer.ReasonInvalidJSON, "empty body"},
		{"oversized body", "POST", "application/json", "", bytes.Repeat([]byte("x"), 5000), 413, reasonTooLarge, "exceeds the limit of 4096"},
		{"unknown content type", "POST", "application/xml", "", []byte(sampleJSON), 415, reasonUnsupportedMedia, "application/xml"},
		{"multipart form", "POST", "multipart/form-data; boundary=x", "", []byte(sampleJSON), 415, reasonUnsupportedMedia, "multipart/form-data"},
		{"form body that is no event", "POST", "application/x-www-form-urlencoded", "", []byte("rule=x&priority=Notice"), 415, reasonUnsupportedMedia, "not a Falco JSON event"},
		{"unknown encoding", "POST", "application/json", "br", []byte(sampleJSON), 415, reasonUnsupportedCoding, `"br"`},
		{"truncated gzip", "POST", "application/json", "gzip", zipped[:len(zipped)-10], 400, reasonInvalidGzip, "invalid gzip"},
		{"not gzip", "POST", "application/json", "gzip", []byte(sampleJSON), 400, reasonInvalidGzip, "invalid gzip"},
		{"gzip bomb", "POST", "application/json", "gzip", bomb, 413, reasonTooLarge, "decompressed body exceeds"},
		{"bad ndjson line", "POST", "application/x-ndjson", "", []byte(sampleJSON + "\n\n" + `{"rule":1}` + "\n"), 400, scorer.ReasonWrongType, "line 3:"},
		{"wrong method", "GET", "", "", nil, 405, reasonMethodNotAllowed, "use POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := value(h.m.rejected.WithLabelValues(SourceHTTP, tc.wantReason))
			req, _ := http.NewRequest(tc.method, base+"/", bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s / error: %v", tc.method, err)
			}
			defer resp.Body.Close()
			var body errorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode error body: %v", err)
			}
			if resp.StatusCode != tc.wantCode || body.Reason != tc.wantReason || !strings.Contains(body.Error, tc.wantMsg) {
				t.Errorf("%s / = %d %+v, want %d reason %q error containing %q", tc.method, resp.StatusCode, body, tc.wantCode, tc.wantReason, tc.wantMsg)
			}
			if got := value(h.m.rejected.WithLabelValues(SourceHTTP, tc.wantReason)) - before; got != 1 {
				t.Errorf("events_rejected_total{reason=%q} grew by %v, want 1", tc.wantReason, got)
			}
		})
	}

	// The server keeps serving: plain, gzip and NDJSON bodies still work.
	for _, ok := range []struct {
		name, ctype, enc string
		body             []byte
		events           int
	}{
		{"json", "application/json", "", []byte(sampleJSON), 1},
		// falcosidekick's example: curl localhost:2801/ -d '{…}'.
		{"curl -d (form content type)", "application/x-www-form-urlencoded", "", []byte(sampleJSON), 1},
		{"no content type", "", "", []byte(sampleJSON), 1},
		{"octet stream", "application/octet-stream", "", []byte(sampleJSON), 1},
		{"gzip", "application/json; charset=utf-8", "gzip", zipped, 1},
		{"ndjson", "application/x-ndjson", "", []byte(sampleJSON + "\r\n\n" + sampleJSON), 2},
	} {
		req, _ := http.NewRequest("POST", base+"/", bytes.NewReader(ok.body))
		req.Header.Set("Content-Type", ok.ctype)
		if ok.enc != "" {
			req.Header.Set("Content-Encoding", ok.enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("{\"accepted\":%d}\n", ok.events); resp.StatusCode != 200 || string(b) != want {
			t.Errorf("POST %s = %d %s, want 200 %s", ok.name, resp.StatusCode, b, want)
		}
	}
	if got := len(rec.got()); got != 7 {
		t.Errorf("accepted events = %d, want 7", got)
	}
	if got := value(h.m.received.WithLabelValues(SourceHTTP)); got != 7 {
		t.Errorf("events_received_total{source=http} = %v, want 7", got)
	}
	if n := seriesCount(reg, "falco_scorer_http_ingest_duration_seconds"); n < 5 {
		t.Errorf("duration histogram series = %d, want one per status code seen (>= 5)", n)
	}
}

func TestHTTPAcceptErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantRetry  string
		wantReason string
	}{
		{"ok", nil, 200, "", ""},
		{"overloaded", scorer.ErrOverloaded, 429, "1", reasonOverloaded},
		{"wrapped overloaded", fmt.Errorf("queue: %w", scorer.ErrOverloaded), 429, "1", reasonOverloaded},
		{"unavailable", scorer.ErrUnavailable, 503, "", reasonUnavailable},
		{"other error", errors.New("disk on fire"), 503, "", reasonUnavailable},
		{"too large for the journal", fmt.Errorf("append: event 0: %w", scorer.ErrTooLarge), 413, "", reasonTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHTTP(testHTTPConfig(), acceptFunc(func(context.Context, string, []scorer.Event) error { return tc.err }), nopLog(), nil)
			if err != nil {
				t.Fatal(err)
			}
			w := post(h, "", sampleJSON)
			var body errorBody
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tc.wantCode || w.Header().Get("Retry-After") != tc.wantRetry || body.Reason != tc.wantReason {
				t.Errorf("POST / with Accept error %v = %d Retry-After %q reason %q, want %d %q %q",
					tc.err, w.Code, w.Header().Get("Retry-After"), body.Reason, tc.wantCode, tc.wantRetry, tc.wantReason)
			}
			if tc.err != nil && tc.wantCode != 413 && strings.Contains(w.Body.String(), "disk on fire") {
				t.Errorf("error body %s leaks the internal error", w.Body)
			}
		})
	}
}

func TestHTTPToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct {
		name  string
		cfg   func(*HTTPConfig)
		token string
	}{
		{"inline", func(c *HTTPConfig) { c.Token = secret.New("s3cret") }, "s3cret"},
		{"file", func(c *HTTPConfig) { c.TokenFile = tokenFile }, "s3cret-from-file"},
	} {
		cfg := testHTTPConfig()
		src.cfg(&cfg)
		h, err := NewHTTP(cfg, &recorder{}, nopLog(), nil)
		if err != nil {
			t.Fatal(err)
		}
		h.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
		for _, tc := range []struct {
			name, auth string
			want       int
		}{
			{"missing", "", 401},
			{"wrong", "Bearer nope", 401},
			{"prefix of token", "Bearer " + src.token[:3], 401},
			{"basic scheme", "Basic " + src.token, 401},
			{"right", "Bearer " + src.token, 200},
			{"right, lowercase scheme", "bearer " + src.token, 200},
		} {
			w := post(h, tc.auth, sampleJSON)
			if w.Code != tc.want {
				t.Errorf("%s token, %s Authorization: POST / = %d, want %d", src.name, tc.name, w.Code, tc.want)
			}
			if tc.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s token, %s Authorization: no WWW-Authenticate header", src.name, tc.name)
			}
		}
		// Mounted handlers are not behind the ingest token.
		w := httptestDo(h, httpNewRequest("GET", "/healthz", "", nil))
		if w.Code != 204 {
			t.Errorf("GET /healthz without token = %d, want 204", w.Code)
		}
	}
}

func TestHTTPTLS(t *testing.T) {
	p := scorertest.NewPKI(t)
	caPEM, _ := os.ReadFile(p.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		clientCA   string
		clientCert bool
		wantErr    bool
	}{
		{"tls", "", false, false},
		{"mtls with client cert", p.CAFile, true, false},
		{"mtls without client cert", p.CAFile, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testHTTPConfig()
			cfg.TLS = TLSConfig{CertFile: p.ServerCert, KeyFile: p.ServerKey, ClientCAFile: tc.clientCA}
			rec := &recorder{}
			h, err := NewHTTP(cfg, rec, nopLog(), nil)
			if err != nil {
				t.Fatal(err)
			}
			base := startHTTP(t, h, "https")
			tc1 := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			if tc.clientCert {
				tc1.Certificates = []tls.Certificate{clientCert}
			}
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc1}, Timeout: 5 * time.Second}
			defer cl.CloseIdleConnections()
			resp, err := cl.Post(base+"/", "application/json", strings.NewReader(sampleJSON))
			if tc.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("POST without client certificate = %d, want a TLS error", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("POST over TLS error: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || len(rec.got()) != 1 {
				t.Errorf("POST over TLS = %d with %d events, want 200 with 1", resp.StatusCode, len(rec.got()))
			}
			// Plain HTTP to a TLS port is refused.
			if resp, err := http.Post("http://"+h.Addr()+"/", "application/json", strings.NewReader(sampleJSON)); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Errorf("plain HTTP to the TLS port = 200, want refusal")
				}
			}
		})
	}
}

func TestHTTPSlowLoris(t *testing.T) {
	cfg := testHTTPConfig()
	cfg.ReadHeaderTimeout = 200 * time.Millisecond
	h, err := NewHTTP(cfg, &recorder{}, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	startHTTP(t, h, "http")
	conn, err := net.Dial("tcp", h.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one header byte every 50ms, never finishing the headers
		_, _ = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nX-Slow: "))
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	// Bounds far above read_header_timeout: without one the client is
	// never cut off, and a busy machine must not fail the test.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.Copy(io.Discard, conn) // returns when the server closes
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("slow client still connected after %s, want it cut off after ~200ms", elapsed)
	}
	if elapsed > 10*time.Second {
		t.Errorf("slow client cut off after %s, want ~200ms", elapsed)
	}
	// And the server still serves others.
	resp, err := http.Post("http://"+h.Addr()+"/", "application/json", strings.NewReader(sampleJSON))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST after slow-loris = %d, want 200", resp.StatusCode)
	}
}

func TestHTTPInFlightBound(t *testing.T) {
	cfg := testHTTPConfig()
	cfg.MaxInFlight = 1
	release := make(chan struct{})
	entered := make(chan struct{})
	h, err := NewHTTP(cfg, acceptFunc(func(context.Context, string, []scorer.Event) error {
		close(entered)
		<-release
		return nil
	}), nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan int)
	go func() { first <- post(h, "", sampleJSON).Code }()
	<-entered
	if w := post(h, "", sampleJSON); w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("POST beyond max_in_flight = %d Retry-After %q, want 429 \"1\"", w.Code, w.Header().Get("Retry-After"))
	}
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("first POST = %d, want 200", code)
	}
}

// TestHTTPShutdownWaitsForAccept: a request in flight when Run's context ends
// still gets its 200 once Accept returns, and Run returns after it.
func TestHTTPShutdownWaitsForAccept(t *testing.T) {
	entered := make(chan struct{})
	h, err := NewHTTP(testHTTPConfig(), acceptFunc(func(context.Context, string, []scorer.Event) error {
		close(entered)
		time.Sleep(200 * time.Millisecond)
		return nil
	}), nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	scorertest.WaitFor(t, "listening", h.Ready)
	codec := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+h.Addr()+"/", "application/json", strings.NewReader(sampleJSON))
		if err != nil {
			codec <- 0
			return
		}
		resp.Body.Close()
		codec <- resp.StatusCode
	}()
	<-entered
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
	if code := <-codec; code != 200 {
		t.Errorf("in-flight POST during shutdown = %d, want 200", code)
	}
	if h.Ready() {
		t.Errorf("Ready() after shutdown = true, want false")
	}
}

func httpNewRequest(method, target, auth string, body io.Reader) *http.Request {
	req, _ := http.NewRequest(method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.RemoteAddr = "127.0.0.1:1234"
	return req
}

func httptestDo(h *HTTP, req *http.Request) *responseRecorder {
	w := newResponseRecorder()
	h.Handler().ServeHTTP(w, req)
	return w
}

func post(h *HTTP, auth, body string) *responseRecorder {
	req := httpNewRequest("POST", "/", auth, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return httptestDo(h, req)
}

// TestHTTPOverloadWait: an overload that clears within overload_wait is
// ridden out (Falco drops an event whatever the answer); one that lasts is
// answered 429 after about overload_wait; with 0 the answer is immediate.
func TestHTTPOverloadWait(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wait      time.Duration
		busyCalls int
		wantCode  int
		minTook   time.Duration
	}{
		{"clears in time", 300 * time.Millisecond, 3, http.StatusOK, 0},
		{"lasts", 100 * time.Millisecond, 1 << 30, http.StatusTooManyRequests, 100 * time.Millisecond},
		{"no wait", 0, 1, http.StatusTooManyRequests, 0},
	} {
		// On synctest's fake clock (the handler is called in memory), so
		// the time taken is the time waited, exactly.
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testHTTPConfig()
				c.OverloadWait = tc.wait
				rec := &recorder{fail: func(call int) error {
					if call <= tc.busyCalls {
						return scorer.ErrBacklogged
					}
					return nil
				}}
				h, err := NewHTTP(c, rec, nopLog(), nil)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				w := post(h, "", sampleJSON)
				took := time.Since(start)
				if w.Code != tc.wantCode || took < tc.minTook || took > tc.wait {
					t.Errorf("POST / = %d after %s, want %d after [%s, %s]", w.Code, took, tc.wantCode, tc.minTook, tc.wait)
				}
				if tc.wantCode == http.StatusOK && len(rec.got()) != 1 {
					t.Errorf("accepted %d events, want 1", len(rec.got()))
				}
			})
		})
	}
}

// TestHTTPMisconfiguredFalcoIsLogged: what a misconfigured Falco sends (its
// text output, json_output: false; a url with a path) is answered with a
// message that says what to change, counted, and logged at warn once a
// minute per kind, since Falco itself reports nothing.
func TestHTTPMisconfiguredFalcoIsLogged(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	h, err := NewHTTP(testHTTPConfig(), &recorder{}, zerolog.New(&logs).Level(zerolog.InfoLevel), reg)
	if err != nil {
		t.Fatal(err)
	}
	text := "12:00:00.123456789: Notice A shell was spawned in a container (user=root container_id=4e5c1a2b3c4d)"
	for range 3 {
		req := httpNewRequest(http.MethodPost, "/", "", strings.NewReader(text))
		req.Header.Set("Content-Type", "text/plain")
		w := httptestDo(h, req)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "json_output: true") {
			t.Errorf("POST / with Falco's text output = %d %s, want 400 naming json_output", w.Code, w.Body)
		}
	}
	w := httptestDo(h, httpNewRequest(http.MethodPost, "/falco", "", strings.NewReader(sampleJSON)))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "post Falco events to /") {
		t.Errorf("POST /falco = %d %s, want 404 saying where to post", w.Code, w.Body)
	}
	if got := value(h.m.rejected.WithLabelValues(SourceHTTP, reasonNotFound)); got != 1 {
		t.Errorf("rejected{reason=not_found} = %v, want 1", got)
	}
	out := logs.String()
	if n := strings.Count(out, `"level":"warn"`); n != 2 {
		t.Errorf("%d warn lines, want 2 (one per kind of rejection):\n%s", n, out)
	}
	if !strings.Contains(out, "json_output") || !strings.Contains(out, "/falco") {
		t.Errorf("warnings do not say what to fix:\n%s", out)
	}
}
