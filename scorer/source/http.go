package source

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/tlsfiles"
)

// HTTP is the ingest server. Build it with NewHTTP, mount extra handlers with
// Handle, then call Run.
type HTTP struct {
	cfg   HTTPConfig
	acc   scorer.Acceptor
	log   zerolog.Logger
	m     *metrics
	token *[sha256.Size]byte // nil when no token is configured
	sem   chan struct{}
	mux   *http.ServeMux
	srv   *http.Server
	bufs  sync.Pool
	addr  atomic.Pointer[string]
	readiness
	running atomic.Bool
	warns   warnLimiter // rejections, logged at most once per reason a while
}

// NewHTTP builds the receiver: it resolves the token, loads TLS material and
// registers metrics on reg (which may be nil). It does not listen; Run does.
func NewHTTP(cfg HTTPConfig, acc scorer.Acceptor, logger zerolog.Logger, reg prometheus.Registerer) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("http input config: %w", err)
	}
	if acc == nil {
		return nil, errors.New("http input: nil acceptor")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("http input: %w", err)
	}
	h := &HTTP{
		readiness: newReadiness(),
		cfg:       cfg, acc: acc, m: m,
		log: logger.With().Str("component", "source.http").Logger(),
		sem: make(chan struct{}, cfg.MaxInFlight),
		mux: http.NewServeMux(),
	}
	tok, err := cfg.TokenRef().Resolve()
	if err != nil {
		return nil, fmt.Errorf("http input: %w", err)
	}
	if !tok.IsZero() {
		sum := sha256.Sum256([]byte(tok.Value()))
		h.token = &sum
	}
	// Validate saw only that a token source is named; an empty file or
	// variable leaves the listener as open as none.
	if err := cfg.exposure(h.token != nil); err != nil {
		return nil, fmt.Errorf("http input: %w", err)
	}
	h.mux.HandleFunc("/{$}", h.ingest)
	h.mux.HandleFunc("/", h.notFound)
	h.srv = &http.Server{
		Handler:           h.mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          log.New(debugWriter{h.log}, "", 0),
	}
	if cfg.TLS.Enabled() {
		tc, err := tlsfiles.Server(tlsfiles.Files{
			CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, CAFile: cfg.TLS.ClientCAFile, CAKey: "client_ca_file",
		})
		if err != nil {
			return nil, fmt.Errorf("http input: %w", err)
		}
		h.srv.TLSConfig = tc
	}
	return h, nil
}

// Handle mounts h on the server's mux (for /metrics, /healthz, /readyz,
// /api/v1/...). Mounted handlers are not subject to the ingest token. The
// ingest handler owns exactly "/"; pattern must not be "/" or "/{$}". Call it
// before Run.
func (h *HTTP) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Handler returns the server's whole handler (ingest and mounted handlers),
// for in-process use such as tests and benchmarks.
func (h *HTTP) Handler() http.Handler { return h.mux }

// Addr returns the address the server listens on once Ready, else "".
func (h *HTTP) Addr() string {
	if p := h.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run listens and serves until ctx ends, then shuts down gracefully: in-flight
// requests finish (their Accept calls are not cancelled) within
// shutdown_timeout, after which remaining connections are closed. It returns
// nil after a clean shutdown.
func (h *HTTP) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("http input: run called twice")
	}
	ln, err := net.Listen("tcp", h.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http input: listen %s: %w", h.cfg.Listen, err)
	}
	addr := ln.Addr().String()
	if h.exposed(ln.Addr()) {
		if !h.cfg.AllowUnauthenticated {
			ln.Close()
			return fmt.Errorf("http input: listen %s: %s is beyond loopback and neither token nor tls.client_ca_file (mTLS) is set: set one, or allow_unauthenticated: true if only Falco can reach it", h.cfg.Listen, addr)
		}
		h.log.Warn().Str("addr", addr).Msg("ingest listens beyond loopback without a token or mtls")
	}
	h.addr.Store(&addr)
	useTLS := h.srv.TLSConfig != nil // read before Serve touches the server
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- h.srv.ServeTLS(ln, "", "")
		} else {
			errc <- h.srv.Serve(ln)
		}
	}()
	h.set(true)
	h.log.Info().Str("addr", addr).Bool("tls", useTLS).Bool("token", h.token != nil).Msg("http input listening")
	select {
	case err := <-errc:
		h.set(false)
		return fmt.Errorf("http input: serve: %w", err)
	case <-ctx.Done():
	}
	h.set(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	err = h.srv.Shutdown(sctx)
	<-errc // Serve returns ErrServerClosed as soon as Shutdown starts
	if err != nil {
		_ = h.srv.Close()
		return fmt.Errorf("http input: shutdown: %w", err)
	}
	return nil
}

// exposed reports a non-loopback listener with neither token nor mTLS.
func (h *HTTP) exposed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() {
		return false
	}
	return h.token == nil && h.cfg.TLS.ClientCAFile == ""
}

// errorBody is the JSON body of every 4xx/5xx ingest answer.
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// notFound answers every path nothing else is mounted on. A POST there is
// most likely Falco's http_output url with a path, which Falco would never
// report (it ignores the status), so it is counted and logged.
func (h *HTTP) notFound(w http.ResponseWriter, r *http.Request) {
	n := 0
	if r.Method == http.MethodPost {
		n = 1
	}
	h.failN(w, http.StatusNotFound, reasonNotFound, n, fmt.Sprintf("no such endpoint %s: post Falco events to / (http_output url http://host:port/)", r.URL.Path))
}

// ingest handles POST / and records the request's duration.
func (h *HTTP) ingest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := h.serveIngest(w, r)
	h.m.duration.WithLabelValues(strconv.Itoa(code)).Observe(time.Since(start).Seconds())
}

func (h *HTTP) serveIngest(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.fail(w, http.StatusMethodNotAllowed, reasonMethodNotAllowed, 1, "method "+r.Method+" not allowed: use POST")
	}
	if h.token != nil && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="falco-scorer"`)
		return h.fail(w, http.StatusUnauthorized, reasonUnauthorized, 1, "missing or invalid bearer token")
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	default:
		w.Header().Set("Retry-After", "1")
		return h.fail(w, http.StatusTooManyRequests, reasonTooManyRequests, 1, "too many concurrent requests")
	}
	ct := r.Header.Get("Content-Type")
	mode, err := bodyModeOf(ct)
	if err != nil {
		return h.fail(w, http.StatusUnsupportedMediaType, reasonUnsupportedMedia, 1, err.Error())
	}
	buf := h.getBuf()
	defer h.putBuf(buf)
	if code, reason, msg := h.readBody(w, r, buf); code != 0 {
		return h.fail(w, code, reason, 1, msg)
	}
	var events []scorer.Event
	if mode == bodyLines {
		events, err = decodeLines(buf.Bytes())
	} else {
		events, err = decodeOne(buf.Bytes())
	}
	if err != nil && mode == bodySniff {
		return h.fail(w, http.StatusUnsupportedMediaType, reasonUnsupportedMedia, 1, fmt.Sprintf(
			"Content-Type %q and the body is not a Falco JSON event (%v): send application/json", ct, err))
	}
	if err != nil {
		msg := err.Error()
		if b := bytes.TrimLeft(buf.Bytes(), " \t\r\n"); len(b) > 0 && b[0] != '{' {
			msg = "body is not a JSON object: Falco posts its text output unless json_output: true is set in falco.yaml (" + msg + ")"
		}
		return h.fail(w, http.StatusBadRequest, decodeReason(err), 1, msg)
	}
	if err := h.accept(r.Context(), events); err != nil {
		if errors.Is(err, scorer.ErrOverloaded) {
			w.Header().Set("Retry-After", "1")
			return h.fail(w, http.StatusTooManyRequests, reasonOverloaded, len(events), "overloaded: retry later")
		}
		if errors.Is(err, scorer.ErrTooLarge) {
			return h.fail(w, http.StatusRequestEntityTooLarge, reasonTooLarge, len(events), err.Error())
		}
		h.log.Debug().Err(err).Int("events", len(events)).Msg("accept failed")
		return h.fail(w, http.StatusServiceUnavailable, reasonUnavailable, len(events), "unavailable: events could not be persisted")
	}
	h.m.received.WithLabelValues(SourceHTTP).Add(float64(len(events)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "{\"accepted\":%d}\n", len(events))
	return http.StatusOK
}

// authorized compares the bearer token in constant time (hashes first, so
// the comparison does not leak the token's length either).
func (h *HTTP) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(auth[len(prefix):]))
	return subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1
}

// bodyMode is how a request body is read.
type bodyMode int

const (
	bodyOne   bodyMode = iota // one JSON event
	bodyLines                 // NDJSON: one event per line
	// bodySniff: one JSON event if the body parses as one, else 415. For
	// types that senders use without meaning them: curl -d (falcosidekick's
	// own examples) sends application/x-www-form-urlencoded, some HTTP
	// clients application/octet-stream.
	bodySniff
)

// bodyModeOf maps the Content-Type to a body mode. Falco's http_output
// sends application/json; no Content-Type at all is read as JSON too. Types
// that are clearly something else (XML, a multipart form) are refused, so
// that a mistake is visible.
func bodyModeOf(ct string) (bodyMode, error) {
	if strings.TrimSpace(ct) == "" {
		return bodyOne, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, fmt.Errorf("invalid Content-Type %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return 0, fmt.Errorf("unsupported charset %q: want utf-8", cs)
	}
	switch mt {
	case "application/json", "text/plain":
		return bodyOne, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return bodyLines, nil
	case "application/x-www-form-urlencoded", "application/octet-stream":
		return bodySniff, nil
	}
	return 0, fmt.Errorf("unsupported Content-Type %q: want application/json (one event) or application/x-ndjson (one event per line)", mt)
}

// readBody reads the (possibly gzip-encoded) body into buf, bounded before
// and after decompression. It returns a non-zero status on failure.
func (h *HTTP) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (code int, reason, msg string) {
	limit := h.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var rd io.Reader = body
	gz := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return bodyErr(err, limit, true)
		}
		defer zr.Close()
		rd, gz = zr, true
	default:
		return http.StatusUnsupportedMediaType, reasonUnsupportedCoding, fmt.Sprintf("unsupported Content-Encoding %q: want gzip or none", enc)
	}
	n, err := buf.ReadFrom(io.LimitReader(rd, limit+1))
	if err != nil {
		return bodyErr(err, limit, gz)
	}
	if n > limit {
		return http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("decompressed body exceeds the limit of %d bytes", limit)
	}
	return 0, "", ""
}

// bodyErr classifies an error reading the body.
func bodyErr(err error, limit int64, gz bool) (int, string, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit)
	case gz:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return http.StatusBadRequest, reasonInvalidGzip, "invalid gzip body: " + err.Error()
	default:
		return http.StatusBadRequest, reasonReadError, "read body: " + err.Error()
	}
}

// decodeOne decodes a single-event body.
func decodeOne(b []byte) ([]scorer.Event, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, &scorer.DecodeError{Reason: scorer.ReasonInvalidJSON, Msg: "empty body: want one Falco JSON event"}
	}
	ev, err := scorer.DecodeJSON(b)
	if err != nil {
		return nil, err
	}
	return []scorer.Event{ev}, nil
}

// decodeLines decodes an NDJSON body. The whole batch is refused at the first
// bad line, so that a client can retry the request as a unit and never gets a
// partial success it cannot express; the error names the line.
func decodeLines(b []byte) ([]scorer.Event, error) {
	events := make([]scorer.Event, 0, bytes.Count(b, []byte{'\n'})+1)
	line := 0
	for len(b) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		l = bytes.TrimRight(l, "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		ev, err := scorer.DecodeJSON(l)
		if err != nil {
			return nil, &scorer.DecodeError{Reason: decodeReason(err), Msg: fmt.Sprintf("line %d: %s", line, err.Error())}
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return nil, &scorer.DecodeError{Reason: scorer.ReasonInvalidJSON, Msg: "empty body: want Falco JSON events, one per line"}
	}
	return events, nil
}

// decodeReason returns the bounded reason of a decode error.
func decodeReason(err error) string {
	var de *scorer.DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return scorer.ReasonInvalidJSON
}

// accept calls Accept and, while the service is overloaded, tries again
// for up to overload_wait before giving up: Falco's http_output drops an
// event whatever the answer, so holding the request a little pushes back
// into Falco's own output queue instead of losing a burst.
func (h *HTTP) accept(ctx context.Context, events []scorer.Event) error {
	err := h.acc.Accept(ctx, SourceHTTP, events)
	if err == nil || !errors.Is(err, scorer.ErrOverloaded) {
		return err // the common case pays for no clock reading
	}
	deadline := time.Now().Add(h.cfg.OverloadWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		if err = h.acc.Accept(ctx, SourceHTTP, events); err == nil || !errors.Is(err, scorer.ErrOverloaded) {
			return err
		}
	}
}

// fail writes a JSON error answer and counts n rejected events (or one
// request when no event was decoded).
func (h *HTTP) fail(w http.ResponseWriter, code int, reason string, n int, msg string) int {
	return h.failN(w, code, reason, max(n, 1), msg)
}

// failN is fail counting exactly n events. Rejections are logged at warn,
// once per reason per warnEvery with the number left out since, because a
// misconfigured Falco (text output, wrong url) loses every event and says
// nothing: Falco ignores the answer.
func (h *HTTP) failN(w http.ResponseWriter, code int, reason string, n int, msg string) int {
	if n > 0 {
		h.m.rejected.WithLabelValues(SourceHTTP, reason).Add(float64(n))
	}
	if skipped, ok := h.warns.allow(reason, time.Now()); ok {
		h.log.Warn().Int("code", code).Str("reason", reason).Str("error", msg).Int("similar_not_logged", skipped).Msg("ingest rejected")
	} else {
		h.log.Debug().Int("code", code).Str("reason", reason).Str("error", msg).Msg("ingest rejected")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg, Reason: reason})
	return code
}

const maxPooledBuf = 4 << 20

// warnEvery is how often one kind of rejection is logged at warn.
const warnEvery = time.Minute

// warnLimiter lets one log line per key through every warnEvery and counts
// the ones it holds back.
type warnLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether key may be logged now, and how many were held back
// since the last one.
func (l *warnLimiter) allow(key string, now time.Time) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	if t, seen := l.last[key]; seen && now.Sub(t) < warnEvery {
		l.held[key]++
		return 0, false
	}
	held = l.held[key]
	l.last[key], l.held[key] = now, 0
	return held, true
}

func (h *HTTP) getBuf() *bytes.Buffer {
	if b, ok := h.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (h *HTTP) putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	b.Reset()
	h.bufs.Put(b)
}

// debugWriter sends net/http's own error log (TLS handshake failures, ...)
// to zerolog at debug level, so a port scan cannot flood the log.
type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Str("error", strings.TrimSpace(string(p))).Msg("http server error")
	return len(p), nil
}
