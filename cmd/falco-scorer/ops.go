package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/store/admin"
)

// mountOps places the operations endpoints (/metrics, /healthz, /readyz and
// the admin API): on their own listener when admin.listen is set, else on
// the HTTP input's listener. Without either they are not served, which is
// logged.
func (s *service) mountOps() error {
	listen := s.cfg.Admin.Listen
	var mount func(pattern string, h http.Handler)
	switch {
	case listen != "":
		s.ops = newOpsServer(listen, s.log)
		mount = s.ops.mux.Handle
	case s.http != nil:
		listen = s.cfg.Inputs.HTTP.Listen
		mount = s.http.Handle
	default:
		if s.grpc != nil || s.cfg.Inputs.GRPC.Enabled { // a service, not a replay
			s.log.Warn().Msg("no /healthz, /readyz or /metrics: the HTTP input is disabled and admin.listen is not set")
		}
		return nil
	}
	mount("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
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
	tok, err := secret.Resolve("admin.token", s.cfg.Admin.Token, s.cfg.Admin.TokenFile, s.cfg.Admin.TokenEnv)
	if err != nil {
		return err
	}
	if tok.IsZero() && !loopback(listen) {
		s.log.Warn().Str("listen", listen).
			Msg("admin api disabled: listener is not loopback and admin.token is not set")
		return nil
	}
	mount("/api/v1/", admin.Handler(s.db, tok, s.log,
		admin.WithDescribe(describeBaseline(s.cfg.Scorer.Order)),
		admin.WithExclusive(func(image string, write func() error) error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return s.pipe.Replace(ctx, image, write)
		})))
	return nil
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
