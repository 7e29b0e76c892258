package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/store/admin"
)

// mountOps places the operations endpoints (/metrics, /healthz, /readyz and
// the admin API): on their own listener when admin.listen is set, else on
// the HTTP input's listener. Without either they are not served, which is
// logged.
//
// Who may use them (README, "Operations endpoints"):
//   - /healthz and /readyz: anyone (kubelet probes carry no token and use
//     the pod IP as Host).
//   - /metrics on admin.listen: anyone whose Host is a name of the listener
//     (hostPolicy), for Prometheus. On the ingest listener, once a token is
//     configured (inputs.http.token or admin.token), only with one of them:
//     a listener the operator protected must not publish the service's
//     state to whoever reaches ingest.
//   - /api/v1: with admin.token, only with it (on either listener). Without
//     it, only on a loopback admin.listen. Never on the ingest listener
//     without admin.token: whatever reaches ingest (Falco, and with no
//     ingest token anything local) must not import, reset or replay, and
//     the ingest token is Falco's credential, not an operator's.
func (s *service) mountOps() error {
	listen := s.cfg.Admin.Listen
	var mount func(pattern string, h http.Handler)
	shared := false // the ingest listener
	switch {
	case listen != "":
		s.ops = newOpsServer(listen, s.log)
		mount = s.ops.mux.Handle
	case s.http != nil:
		listen = s.cfg.Inputs.HTTP.Listen
		mount = s.http.Handle
		shared = true
	default:
		if s.grpc != nil || s.cfg.Inputs.GRPC.Enabled { // a service, not a replay
			s.log.Warn().Msg("no /healthz, /readyz or /metrics: the HTTP input is disabled and admin.listen is not set")
		}
		return nil
	}
	tok, err := s.cfg.Admin.TokenRef().Under("admin.").Resolve()
	if err != nil {
		return err
	}
	var metricsAuth admin.Bearer
	if shared {
		ingestTok, err := s.cfg.Inputs.HTTP.TokenRef().Under("inputs.http.").Resolve()
		if err != nil {
			return err
		}
		metricsAuth = admin.NewBearer(tok, ingestTok)
	}
	hosts := newHostPolicy(listen, s.cfg.Admin.AllowedHosts)
	mount("/metrics", guardOps(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}),
		hosts.check(metricsAuth.Enabled()), metricsAuth))
	mount("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	mount("/readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !s.isReady() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}))
	switch {
	case tok.IsZero() && shared:
		s.log.Info().Str("listen", listen).
			Msg("admin api off: on the ingest listener it needs admin.token (or set admin.listen to a loopback address)")
		return nil
	case tok.IsZero() && !loopback(listen):
		s.log.Warn().Str("listen", listen).
			Msg("admin api disabled: listener is not loopback and admin.token is not set")
		return nil
	}
	mount("/api/v1/", admin.Handler(s.db, tok, s.log,
		admin.WithHostCheck(hosts.check(!tok.IsZero())),
		admin.WithDescribe(describeBaseline(s.cfg.Scorer.Order)),
		admin.WithExclusive(func(image string, write func() error) error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return s.pipe.Replace(ctx, image, write)
		})))
	return nil
}

// guardOps lets a request through to next when check (nil: any host)
// accepts its Host and, when auth is enabled, it carries a token.
func guardOps(next http.Handler, check func(host string) bool, auth admin.Bearer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if check != nil && !check(admin.RequestHost(r)) {
			http.Error(w, "host is not a name of this listener (admin.allowed_hosts)", http.StatusForbidden)
			return
		}
		if auth.Enabled() && !auth.Check(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="falco-scorer"`)
			http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostPolicy is the set of Host values an operations listener answers to,
// against DNS rebinding: a web page whose name the attacker re-points at
// 127.0.0.1 (or at a node's address) is same-origin with the listener, so
// neither CORS nor Origin checks stop it, but its requests carry the
// attacker's name as Host. Accepted: any IP literal (a rebinding needs a
// name; kubelet and Prometheus use the pod IP), "localhost", the listen
// host when it is a name, and admin.allowed_hosts.
type hostPolicy struct {
	loopback bool
	names    map[string]bool
}

func newHostPolicy(listen string, extra []string) hostPolicy {
	p := hostPolicy{loopback: loopback(listen), names: map[string]bool{"localhost": true}}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		p.names[normalHost(host)] = true
	}
	for _, h := range extra {
		p.names[normalHost(h)] = true
	}
	return p
}

// check returns the Host check for an endpoint. A token-protected endpoint
// on a non-loopback listener accepts any host: a rebinding page cannot
// send the token, and clients may reach such a listener under names
// (Services, ingresses) nobody listed. It returns nil for "any host".
func (p hostPolicy) check(tokenProtected bool) func(string) bool {
	if tokenProtected && !p.loopback {
		return nil
	}
	return func(host string) bool {
		if host == "" { // HTTP/1.0 without Host: not a browser
			return true
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return true
		}
		return p.names[host]
	}
}

// normalHost is a host name as admin.RequestHost returns it.
func normalHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), "."))
}

func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// opsServer serves the operations endpoints on admin.listen (plain HTTP:
// probes and Prometheus scrapes, and the admin API behind its token).
type opsServer struct {
	listen string
	log    zerolog.Logger
	mux    *http.ServeMux
	srv    *http.Server
	done   chan error
	addr   atomic.Pointer[string] // set once listening
	once   sync.Once
}

func newOpsServer(listen string, logger zerolog.Logger) *opsServer {
	o := &opsServer{listen: listen, log: logger.With().Str("component", "admin").Logger(), mux: http.NewServeMux()}
	o.srv = &http.Server{
		Handler:           o.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second, // baseline imports are the largest bodies
		WriteTimeout:      60 * time.Second, // and exports the largest answers
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdlog.New(o.log, "", 0),
	}
	return o
}

// start listens (an address in use is an error at start-up, not later) and
// serves in the background.
func (o *opsServer) start() error {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", o.listen, err)
	}
	addr := ln.Addr().String()
	o.addr.Store(&addr)
	o.done = make(chan error, 1)
	go func() { o.done <- o.srv.Serve(ln) }()
	o.log.Info().Str("addr", addr).Msg("health, metrics and admin api listening")
	return nil
}

// stop closes the listener and waits briefly for requests in flight (a
// baseline export to a client that stopped reading is cut off). It may be
// called more than once, and before start.
func (o *opsServer) stop() {
	o.once.Do(func() {
		if o.done == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := o.srv.Shutdown(ctx); err != nil {
			_ = o.srv.Close()
		}
		if err := <-o.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Warn().Err(err).Msg("admin listener")
		}
	})
}

// opsAddr is the address of admin.listen's server once it listens, else "".
func (s *service) opsAddr() string {
	if s.ops == nil {
		return ""
	}
	if p := s.ops.addr.Load(); p != nil {
		return *p
	}
	return ""
}
