package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/falco-scorer/falco-scorer/rules"
	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/scorer/source"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
	"github.com/falco-scorer/falco-scorer/sinks/stdout"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
	"github.com/falco-scorer/falco-scorer/store"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service: ingest Falco events, score them, deliver alerts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := setup(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			svc, err := newService(cfg, log, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			return svc.Run(cmd.Context())
		},
	}
}

// setup loads the configuration and builds the root logger.
func setup(g *globalFlags, stderr io.Writer) (Config, zerolog.Logger, error) {
	cfg, err := LoadConfig(g.configPath)
	if err != nil {
		return cfg, zerolog.Logger{}, err
	}
	if g.logFormat != "" {
		cfg.Log.Format = g.logFormat
	}
	if g.logLevel != "" {
		cfg.Log.Level = g.logLevel
	}
	log, err := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if limit := memoryLimit(cfg.MemoryLimitMiB, cgroupMemoryLimit()); limit > 0 {
		if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
			debug.SetMemoryLimit(limit)
		}
	}
	return cfg, log, err
}

// memoryLimit is the soft memory limit in bytes: memory_limit_mib when set,
// otherwise 80 % of the container's memory limit (cgroupBytes, 0 when there
// is none), otherwise 0 (no limit). The 20 % left is for what the Go
// runtime does not count: Badger's memory-mapped tables and the kernel's
// page cache, both charged to the container.
func memoryLimit(configMiB int, cgroupBytes int64) int64 {
	switch {
	case configMiB > 0:
		return int64(configMiB) << 20
	case cgroupBytes > 0:
		return cgroupBytes / 5 * 4
	}
	return 0
}

// cgroupMemoryLimit returns the memory limit of this process's cgroup
// (v2 memory.max, else v1 memory.limit_in_bytes) in bytes, or 0 when there
// is none or it cannot be read.
func cgroupMemoryLimit() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		return parseCgroupLimit(string(b))
	}
	return 0
}

// parseCgroupLimit reads a cgroup memory limit file's content: "max" (v2)
// and v1's "no limit" (a value near the largest int64) mean none.
func parseCgroupLimit(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0
	}
	return n
}

// service is falco-scorer wired together: store, pipeline, sinks, inputs.
type service struct {
	cfg         Config
	log         zerolog.Logger
	reg         *prometheus.Registry
	db          *store.DB
	pipe        *pipeline.Pipeline
	engine      *rules.Engine
	sinks       []sinks.Sink
	dispatchers []*sinks.Dispatcher
	http        *source.HTTP
	grpc        *source.GRPC
	ops         *opsServer    // admin.listen's server; nil when the endpoints share the ingest listener
	ready       chan struct{} // closed once the inputs run
}

// serviceOption adds to what the service gives the pipeline (a hook the
// demo narrates).
type serviceOption func(*pipeline.Deps)

// onGraduated has fn called when an image's baseline graduates to
// monitoring.
func onGraduated(fn func(pipeline.Graduated)) serviceOption {
	return func(d *pipeline.Deps) { d.OnGraduated = fn }
}

// newService opens the store and builds every component; Run starts them.
// On error everything opened so far is closed.
func newService(cfg Config, log zerolog.Logger, out io.Writer, opts ...serviceOption) (_ *service, err error) {
	s := &service{cfg: cfg, log: log, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.db, err = store.Open(cfg.Store, log, s.reg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.Store.Dir, err)
	}
	defer func() {
		if err != nil {
			s.closeSinks()
			s.db.Close()
		}
	}()

	if cfg.RulesFile != "" {
		if s.engine, err = rules.Load(cfg.RulesFile); err != nil {
			return nil, err
		}
	} else {
		s.engine = rules.Default()
	}
	if err = s.engine.Register(s.reg); err != nil {
		return nil, fmt.Errorf("register rules metrics: %w", err)
	}

	if err = s.buildSinks(out); err != nil {
		return nil, err
	}
	s.db.SetSinks(cfg.enabledSinks())
	metrics, err := sinks.NewMetrics(s.reg)
	if err != nil {
		return nil, fmt.Errorf("sink metrics: %w", err)
	}
	for _, sk := range s.sinks {
		d, err := sinks.NewDispatcher(sk, s.db, cfg.Delivery, log, metrics)
		if err != nil {
			return nil, fmt.Errorf("dispatcher %s: %w", sk.Name(), err)
		}
		s.dispatchers = append(s.dispatchers, d)
	}

	enabled := cfg.enabledSinks()
	deps := pipeline.Deps{
		Journal:    s.db,
		Baselines:  baselineStore{s.db},
		Decider:    enabledOnly(s.engine, enabled),
		Sinks:      enabled,
		Wake:       s.wake,
		Backlogged: s.db.Backlogged,
	}
	for _, o := range opts {
		o(&deps)
	}
	s.pipe, err = pipeline.New(cfg.Scorer, deps, log, s.reg)
	if err != nil {
		return nil, fmt.Errorf("scorer.%w", err)
	}

	if cfg.Inputs.HTTP.Enabled {
		if s.http, err = source.NewHTTP(cfg.Inputs.HTTP, s.pipe, log, s.reg); err != nil {
			return nil, fmt.Errorf("http input: %w", err)
		}
	}
	if err = s.mountOps(); err != nil {
		return nil, err
	}
	if cfg.Inputs.GRPC.Enabled {
		if s.grpc, err = source.NewGRPC(cfg.Inputs.GRPC, s.pipe, log, s.reg); err != nil {
			return nil, fmt.Errorf("grpc input: %w", err)
		}
	}
	return s, nil
}

// buildSinks creates one sink per enabled destination, explicitly.
func (s *service) buildSinks(out io.Writer) error {
	c := s.cfg.Sinks
	var errs []error
	if c.Stdout.Enabled {
		s.sinks = append(s.sinks, stdout.New(out))
	}
	if c.Kafka.Enabled {
		k, err := kafka.New(c.Kafka.Config, s.log)
		errs = append(errs, wrapIf("sinks.kafka", err))
		if err == nil {
			s.sinks = append(s.sinks, k)
		}
	}
	if c.Slack.Enabled {
		sl, err := slack.New(c.Slack.Config, s.log)
		errs = append(errs, wrapIf("sinks.slack", err))
		if err == nil {
			s.sinks = append(s.sinks, sl)
		}
	}
	if c.Webhook.Enabled {
		w, err := webhook.New(c.Webhook.Config, s.log)
		errs = append(errs, wrapIf("sinks.webhook", err))
		if err == nil {
			s.sinks = append(s.sinks, w)
		}
	}
	return errors.Join(errs...)
}

func wrapIf(prefix string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

func (s *service) isReady() bool {
	select {
	case <-s.ready:
	default:
		return false
	}
	if s.http != nil && !s.http.Ready() {
		return false
	}
	if s.grpc != nil && !s.grpc.Ready() {
		return false
	}
	return true
}

func (s *service) wake() {
	for _, d := range s.dispatchers {
		d.Wake()
	}
}

// Run starts every component and, when ctx is cancelled, shuts them down in
// order within cfg.ShutdownTimeout: stop ingest, drain the pipeline, let the
// sinks flush the outbox, close the sinks, close the store.
func (s *service) Run(ctx context.Context) error { return s.run(ctx, nil) }

// runWith runs the service, calls feed once it is ready, then shuts down
// as on a signal (drain, flush, close) and returns feed's result.
func (s *service) runWith(ctx context.Context, feed func(context.Context) (source.Stats, error)) (source.Stats, error) {
	var st source.Stats
	var feedErr error
	err := s.run(ctx, func(ctx context.Context) {
		st, feedErr = feed(ctx)
	})
	return st, errors.Join(feedErr, err)
}

func (s *service) run(ctx context.Context, feed func(context.Context)) error {
	var (
		storeCtx, stopStore = context.WithCancel(context.Background())
		sinkCtx, stopSinks  = context.WithCancel(context.Background())
		pipeCtx, stopPipe   = context.WithCancel(context.Background())
		inCtx, stopInputs   = context.WithCancel(context.Background())
		storeWG, sinkWG     sync.WaitGroup
		inWG                sync.WaitGroup
		pipeDone            = make(chan error, 1)
		inputErr            = make(chan error, 2)
	)
	defer stopStore()
	defer stopSinks()
	defer stopPipe()
	defer stopInputs()

	if s.ops != nil {
		// Up from the start: liveness answers during the journal replay,
		// readiness says when it is over, metrics last until the end.
		if err := s.ops.start(); err != nil {
			return s.finish(err, stopSinks, &sinkWG, stopStore, &storeWG)
		}
		defer s.ops.stop()
	}
	storeWG.Add(1)
	go func() { defer storeWG.Done(); s.db.Run(storeCtx) }()
	for _, d := range s.dispatchers {
		sinkWG.Add(1)
		go func() { defer sinkWG.Done(); d.Run(sinkCtx) }()
	}
	go func() { pipeDone <- s.pipe.Run(pipeCtx) }()
	select {
	case <-s.pipe.Ready():
	case err := <-pipeDone:
		return s.finish(fmt.Errorf("pipeline: %w", err), stopSinks, &sinkWG, stopStore, &storeWG)
	case <-ctx.Done():
	}
	for _, in := range []interface{ Run(context.Context) error }{s.http, s.grpc} {
		if in == nil || isNilInput(in) {
			continue
		}
		inWG.Add(1)
		go func() {
			defer inWG.Done()
			if err := in.Run(inCtx); err != nil {
				inputErr <- err
			}
		}()
	}
	close(s.ready)
	for deadline := time.Now().Add(10 * time.Second); !s.isReady() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s.log.Info().Strs("sinks", s.cfg.enabledSinks()).Str("http", s.httpAddr()).
		Bool("grpc", s.grpc != nil).Str("data_dir", s.cfg.Store.Dir).Msg("falco-scorer running")

	var runErr error
	fed := make(chan struct{})
	if feed != nil {
		go func() { feed(ctx); close(fed) }()
	}
	select {
	case <-fed:
	case <-ctx.Done():
		s.log.Info().Msg("shutting down")
	case runErr = <-inputErr:
		s.log.Error().Err(runErr).Msg("input failed, shutting down")
	case err := <-pipeDone:
		runErr = fmt.Errorf("pipeline: %w", err)
	}
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)

	// 1. Stop ingest: nothing new is acknowledged from here on.
	stopInputs()
	waitBounded(&inWG, time.Until(deadline))
	// 2. Drain the pipeline: every accepted event is scored and its alerts
	// reach the outbox.
	stopPipe()
	select {
	case <-pipeDone:
	case <-time.After(time.Until(deadline)):
		s.log.Warn().Msg("pipeline drain timed out; unscored events stay in the journal for the next start")
	}
	// 3. Let the sinks deliver what the outbox holds, within half the time left.
	s.wake()
	s.flushOutbox(time.Now().Add(time.Until(deadline) / 2))
	return s.finish(runErr, stopSinks, &sinkWG, stopStore, &storeWG)
}

// finish stops the sinks and the store, in that order.
func (s *service) finish(runErr error, stopSinks func(), sinkWG *sync.WaitGroup, stopStore func(), storeWG *sync.WaitGroup) error {
	stopSinks()
	waitBounded(sinkWG, 10*time.Second)
	s.closeSinks()
	stopStore()
	storeWG.Wait()
	if s.ops != nil {
		// Before the store: an admin request (a baseline export) holds
		// the store open while it streams.
		s.ops.stop()
	}
	if err := s.db.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close store: %w", err))
	}
	s.log.Info().Msg("stopped")
	return runErr
}

func (s *service) closeSinks() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sk := range s.sinks {
		if err := sk.Close(ctx); err != nil {
			s.log.Warn().Err(err).Str("sink", sk.Name()).Msg("close sink")
		}
	}
}

// flushOutbox waits until every sink's outbox is empty or the deadline.
// What is left is delivered after the next start.
//
// Entries a sink chose to send later (Slack follow-ups waiting for their
// digest) are not waited for: they stay in the outbox, like any entry left
// at shutdown.
func (s *service) flushOutbox(deadline time.Time) {
	for time.Now().Before(deadline) {
		left := 0
		for _, d := range s.dispatchers {
			if n, err := s.db.PendingCount(d.Name()); err == nil {
				left += max(n-d.Held(), 0)
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.log.Warn().Msg("outbox not empty at shutdown; pending alerts are delivered after the next start")
}

func (s *service) httpAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// isNilInput reports whether an input interface holds a nil pointer.
func isNilInput(in interface{ Run(context.Context) error }) bool {
	switch v := in.(type) {
	case *source.HTTP:
		return v == nil
	case *source.GRPC:
		return v == nil
	}
	return false
}

// enabledOnly drops the rules' routes to sinks that are not enabled (a
// route to a disabled sink would fill its outbox forever).
func enabledOnly(e *rules.Engine, enabled []string) scorer.Decider {
	return scorer.DeciderFunc(func(a *scorer.Alert, now time.Time) scorer.Decision {
		d := e.Decide(a, now)
		d.Sinks = slices.DeleteFunc(d.Sinks, func(name string) bool { return !slices.Contains(enabled, name) })
		return d
	})
}

// baselineStore adds on-demand loading of one image to the store.
type baselineStore struct{ *store.DB }

func (b baselineStore) LoadImage(image string, since time.Time) ([]byte, []scorer.BaselineBucket, bool, error) {
	info, buckets, err := b.DB.Image(image)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	kept := buckets[:0]
	for _, bk := range buckets {
		if !bk.Bucket.Before(since) {
			kept = append(kept, bk)
		}
	}
	return info.Meta, kept, true, nil
}
