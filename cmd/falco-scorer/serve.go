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

	if s.engine, err = loadRules(cfg.RulesFile, s.reg); err != nil {
		return nil, err
	}
	if err = s.buildSinks(out); err != nil {
		return nil, err
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

// loadRules loads the routing rules (the built-in ones when path is empty)
// and registers their metrics.
func loadRules(path string, reg prometheus.Registerer) (*rules.Engine, error) {
	if path == "" {
		e := rules.Default()
		return e, registerRules(e, reg)
	}
	e, err := rules.Load(path)
	if err != nil {
		return nil, err
	}
	return e, registerRules(e, reg)
}

func registerRules(e *rules.Engine, reg prometheus.Registerer) error {
	if err := e.Register(reg); err != nil {
		return fmt.Errorf("register rules metrics: %w", err)
	}
	return nil
}

// buildSinks creates one sink per enabled destination, in the order of
// sinkKinds, and a dispatcher for each.
func (s *service) buildSinks(out io.Writer) error {
	var errs []error
	for _, k := range s.cfg.sinkKinds() {
		if !k.enabled {
			continue
		}
		sk, err := k.build(out, s.log)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinks.%s: %w", k.name, err))
			continue
		}
		s.sinks = append(s.sinks, sk)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.db.SetSinks(s.cfg.enabledSinks())
	metrics, err := sinks.NewMetrics(s.reg)
	if err != nil {
		return fmt.Errorf("sink metrics: %w", err)
	}
	for _, sk := range s.sinks {
		d, err := sinks.NewDispatcher(sk, s.db, s.cfg.Delivery, s.log, metrics)
		if err != nil {
			return fmt.Errorf("dispatcher %s: %w", sk.Name(), err)
		}
		s.dispatchers = append(s.dispatchers, d)
	}
	return nil
}

// The dispatchers find the outbox's PendingCounter by type assertion; a
// changed signature in store must fail the build, not quietly drop the
// queue_depth gauge.
var (
	_ scorer.Outbox        = (*store.DB)(nil)
	_ sinks.PendingCounter = (*store.DB)(nil)
)

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

// stage is one part of the service's lifecycle. run starts the stages in
// order and, on the way out, stops every stage in reverse order, started or
// not, each within its own bound: a stage that never started stops only
// what newService opened for it (the sinks and the store are closed), so a
// failed start releases everything a shutdown does.
type stage struct {
	name string
	// start starts the part; nil when newService already made it. An error
	// ends the start: no later stage starts.
	start func() error
	// stop is given whether start succeeded and the shutdown deadline; it
	// returns once the part has stopped or its bound has passed, with an
	// error only for what run should return.
	stop func(started bool, deadline time.Time) error
}

// lifecycle is one run's state: the goroutines of each stage and how the
// ones that may end on their own (pipeline, inputs) report it.
type lifecycle struct {
	s                    *service
	ctx                  context.Context // the caller's: cancelled on a signal
	storeLoops, dispatch *group
	pipeline, inputs     *group
	pipeExit             chan struct{} // closed when the pipeline's Run returns
	pipeErr              error         // its result, read after pipeExit
	inputErr             chan error    // an input that failed
}

// stages lists the service's parts in start order; stop order is the
// reverse: stop ingest, drain the pipeline and flush the outbox, stop the
// dispatchers and close the sinks, stop the store's loops, stop the admin
// listener, close the store.
func (l *lifecycle) stages() []stage {
	s := l.s
	stages := []stage{{
		name: "store",
		stop: func(bool, time.Time) error {
			if err := s.db.Close(); err != nil {
				return fmt.Errorf("close store: %w", err)
			}
			return nil
		},
	}}
	if s.ops != nil {
		stages = append(stages, stage{
			// Up from the start: liveness answers during the journal
			// replay, readiness says when it is over, metrics last until
			// the end. Stopped before the store closes: an admin request
			// (a baseline export) holds the store open while it streams.
			name:  "admin listener",
			start: s.ops.start,
			stop:  func(bool, time.Time) error { s.ops.stop(); return nil },
		})
	}
	return append(stages, stage{
		name:  "store loops",
		start: func() error { l.storeLoops.run(func(ctx context.Context) { s.db.Run(ctx) }); return nil },
		stop:  func(bool, time.Time) error { l.storeLoops.stop(-1); return nil },
	}, stage{
		name: "sinks",
		start: func() error {
			for _, d := range s.dispatchers {
				l.dispatch.run(func(ctx context.Context) { d.Run(ctx) })
			}
			return nil
		},
		stop: func(bool, time.Time) error {
			l.dispatch.stop(10 * time.Second)
			s.closeSinks()
			return nil
		},
	}, stage{
		name:  "pipeline",
		start: l.startPipeline,
		stop:  l.drainPipeline,
	}, stage{
		name:  "inputs",
		start: l.startInputs,
		stop: func(started bool, deadline time.Time) error {
			if started {
				l.inputs.stop(time.Until(deadline))
			}
			return nil
		},
	})
}

// startPipeline starts the pipeline and waits until it has replayed the
// journal, or failed, or ctx ends (the inputs start then anyway, and the
// shutdown that follows drains what the replay did).
func (l *lifecycle) startPipeline() error {
	l.pipeline.run(func(ctx context.Context) {
		l.pipeErr = l.s.pipe.Run(ctx)
		close(l.pipeExit)
	})
	select {
	case <-l.s.pipe.Ready():
	case <-l.pipeExit:
		return fmt.Errorf("pipeline: %w", l.pipeErr)
	case <-l.ctx.Done():
	}
	return nil
}

// drainPipeline lets every accepted event be scored and its alerts reach
// the outbox, until the deadline; then the sinks get half the time left to
// deliver what the outbox holds.
func (l *lifecycle) drainPipeline(started bool, deadline time.Time) error {
	l.pipeline.cancel()
	if !started {
		return nil
	}
	select {
	case <-l.pipeExit:
	case <-time.After(time.Until(deadline)):
		l.s.log.Warn().Msg("pipeline drain timed out; unscored events stay in the journal for the next start")
	}
	l.s.wake()
	l.s.flushOutbox(time.Now().Add(time.Until(deadline) / 2))
	return nil
}

// startInputs starts the inputs that are configured and waits (at most
// 10 s) until they accept events.
func (l *lifecycle) startInputs() error {
	s := l.s
	var inputs []interface {
		Run(context.Context) error
		Started() <-chan struct{}
	}
	if s.http != nil {
		inputs = append(inputs, s.http)
	}
	if s.grpc != nil {
		inputs = append(inputs, s.grpc)
	}
	for _, in := range inputs {
		l.inputs.run(func(ctx context.Context) {
			if err := in.Run(ctx); err != nil {
				l.inputErr <- err
			}
		})
	}
	close(s.ready)
	// An input that is not up by then (Falco's gRPC socket not there yet)
	// keeps trying in the background; /readyz tells when it is.
	limit := time.NewTimer(inputStartWait)
	defer limit.Stop()
	for _, in := range inputs {
		select {
		case <-in.Started():
		case <-limit.C:
			return nil
		case <-l.ctx.Done():
			return nil
		}
	}
	return nil
}

// inputStartWait bounds how long start waits for the inputs to accept events.
const inputStartWait = 10 * time.Second

// wait blocks until feed (when not nil) returns, ctx ends, an input fails
// or the pipeline stops on its own, and returns the failure.
func (l *lifecycle) wait(feed func(context.Context)) error {
	fed := make(chan struct{})
	if feed != nil {
		go func() { feed(l.ctx); close(fed) }()
	}
	select {
	case <-fed:
	case <-l.ctx.Done():
		l.s.log.Info().Msg("shutting down")
	case err := <-l.inputErr:
		l.s.log.Error().Err(err).Msg("input failed, shutting down")
		return err
	case <-l.pipeExit:
		return fmt.Errorf("pipeline: %w", l.pipeErr)
	}
	return nil
}

func (s *service) run(ctx context.Context, feed func(context.Context)) error {
	l := &lifecycle{s: s, ctx: ctx, storeLoops: newGroup(), dispatch: newGroup(), pipeline: newGroup(),
		inputs: newGroup(), pipeExit: make(chan struct{}), inputErr: make(chan error, 2)}
	stages := l.stages()
	started := 0
	var err error
	for _, st := range stages {
		if st.start != nil {
			if err = st.start(); err != nil {
				break
			}
		}
		started++
	}
	if err == nil {
		s.log.Info().Strs("sinks", s.cfg.enabledSinks()).Str("http", s.httpAddr()).
			Bool("grpc", s.grpc != nil).Str("data_dir", s.cfg.Store.Dir).Msg("falco-scorer running")
		err = l.wait(feed)
	}
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	for i := len(stages) - 1; i >= 0; i-- {
		if e := stages[i].stop(i < started, deadline); e != nil {
			err = errors.Join(err, e)
		}
	}
	s.log.Info().Msg("stopped")
	return err
}

// group runs goroutines under one context and stops them together.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGroup() *group {
	ctx, cancel := context.WithCancel(context.Background())
	return &group{ctx: ctx, cancel: cancel}
}

func (g *group) run(f func(context.Context)) {
	g.wg.Add(1)
	go func() { defer g.wg.Done(); f(g.ctx) }()
}

// stop cancels the group's context and waits for its goroutines, at most
// for d when d >= 0.
func (g *group) stop(d time.Duration) {
	g.cancel()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	if d < 0 {
		<-done
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
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
	// One channel for the dispatchers' progress signals, fed until return.
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	for _, d := range s.dispatchers {
		go func() {
			for {
				select {
				case <-d.Progress():
					select {
					case progress <- struct{}{}:
					default:
					}
				case <-done:
					return
				}
			}
		}()
	}
	limit := time.NewTimer(time.Until(deadline))
	defer limit.Stop()
	for {
		left := 0
		for _, d := range s.dispatchers {
			if n, err := s.db.PendingCount(d.Name()); err == nil {
				left += max(n-d.Held(), 0)
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-progress:
		case <-limit.C:
			s.log.Warn().Msg("outbox not empty at shutdown; pending alerts are delivered after the next start")
			return
		}
	}
}

func (s *service) httpAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
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
