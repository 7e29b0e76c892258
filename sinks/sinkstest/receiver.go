package sinkstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Request is one request a Receiver got.
type Request struct {
	At     time.Time // arrival (the bubble's fake time in a synctest test)
	Body   []byte
	Header http.Header
	Status int // the status the Receiver answered
}

// Respond answers the n-th request (0-based) a Receiver got; body is r's
// body, already read.
type Respond func(n int, w http.ResponseWriter, r *http.Request, body []byte)

// Receiver stands in for an HTTP destination (Slack, a webhook target, a
// falcosidekick): it records every request and answers it with its Respond
// (200 "ok" when nil). NewReceiver serves it on a loopback socket;
// NewMemReceiver serves it in memory, as the http.RoundTripper of the
// sink's client, for tests in a synctest bubble (a real socket would keep
// the bubble's clock from advancing).
type Receiver struct {
	// URL is the base URL of a socket Receiver ("" in memory).
	URL string

	respond Respond
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []Request
}

// NewReceiver starts a Receiver on a loopback socket, closed when t ends.
func NewReceiver(t testing.TB, respond Respond) *Receiver {
	t.Helper()
	f := &Receiver{respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// NewMemReceiver returns a Receiver without a socket: set it as the
// sink's client transport (RoundTrip).
func NewMemReceiver(respond Respond) *Receiver { return &Receiver{respond: respond} }

// Close stops a socket Receiver now, so that its URL refuses connections.
func (f *Receiver) Close() {
	if f.srv != nil {
		f.srv.Close()
	}
}

// RoundTrip serves r in memory.
func (f *Receiver) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	f.serve(w, r)
	return w.Result(), nil
}

func (f *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, Request{At: time.Now(), Body: body, Header: r.Header.Clone()})
	f.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	if f.respond == nil {
		io.WriteString(sw, "ok")
	} else {
		f.respond(n, sw, r, body)
	}
	f.mu.Lock()
	f.reqs[n].Status = sw.status()
	f.mu.Unlock()
}

// Requests returns every request so far, in arrival order.
func (f *Receiver) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// Bodies returns the bodies of the requests answered with a 2xx status
// (what a sink counts as delivered), in arrival order.
func (f *Receiver) Bodies() [][]byte {
	var out [][]byte
	for _, r := range f.Requests() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r.Body)
		}
	}
	return out
}

// Arrivals returns when each request arrived, in order.
func (f *Receiver) Arrivals() []time.Time {
	var out []time.Time
	for _, r := range f.Requests() {
		out = append(out, r.At)
	}
	return out
}

// statusWriter remembers the status a Respond wrote (200 when it wrote
// none).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
