package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// streamUpAfter is how long a sub stream must stay open, with no response
// yet, to count as up (an idle Falco sends nothing).
const streamUpAfter = time.Second

// GRPC subscribes to Falco's gRPC outputs (Falco ≤ 0.43) and accepts the
// events it streams. Build it with NewGRPC and call Run.
type GRPC struct {
	cfg GRPCConfig
	acc scorer.Acceptor
	log zerolog.Logger
	m   *metrics
	readiness
	running atomic.Bool
}

// NewGRPC builds the gRPC input and registers its metrics on reg (which may be
// nil). It does not connect; Run does.
func NewGRPC(cfg GRPCConfig, acc scorer.Acceptor, logger zerolog.Logger, reg prometheus.Registerer) (*GRPC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("grpc input config: %w", err)
	}
	if acc == nil {
		return nil, errors.New("grpc input: nil acceptor")
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("grpc input: %w", err)
	}
	return &GRPC{readiness: newReadiness(), cfg: cfg, acc: acc, m: m, log: logger.With().Str("component", "source.grpc").Logger()}, nil
}

// Run connects, subscribes and accepts events until ctx ends, reconnecting
// with jittered exponential backoff whenever the stream is lost. It logs once
// when a stream is lost and once when it is back (never per attempt). On ctx
// end it stops receiving, accepts what it already received (bounded by
// shutdown_timeout) and returns nil.
func (g *GRPC) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return errors.New("grpc input: run called twice")
	}
	var (
		wait       = g.cfg.BackoffInitial
		everUp     bool
		lostAt     time.Time
		lostErr    error
		attempts   int
		subscribed bool
	)
	onSubscribed := func() {
		subscribed = true
		g.set(true)
		switch {
		case !everUp:
			g.log.Info().Str("target", g.target()).Int("attempts", attempts+1).Msg("grpc subscribed")
		case !lostAt.IsZero():
			g.m.reconnects.Inc()
			g.log.Info().Str("target", g.target()).Int("attempts", attempts).
				Dur("down", time.Since(lostAt)).AnErr("cause", lostErr).Msg("grpc reconnected")
		}
		everUp, lostAt, lostErr, attempts = true, time.Time{}, nil, 0
	}
	for {
		subscribed = false
		started := time.Now()
		err := g.session(ctx, onSubscribed)
		g.set(false)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed {
			g.log.Warn().Err(err).Dur("up", time.Since(started)).Msg("grpc stream lost")
			lostAt, lostErr = time.Now(), err
			wait = g.cfg.BackoffInitial
		} else if attempts == 0 && !everUp {
			ev := g.log.Warn().Err(err).Str("target", g.target())
			if hint := refusalHint(err); hint != "" {
				ev = ev.Str("hint", hint)
			}
			ev.Msg("grpc connect failed, retrying")
		}
		attempts++
		g.log.Debug().Err(err).Int("attempt", attempts).Msg("grpc attempt failed")
		// Full jitter on the upper half: wait in [d/2, d).
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, g.cfg.BackoffMax)
	}
}

// refusalHint says what to check when the server refused the sub stream
// rather than being unreachable.
func refusalHint(err error) string {
	switch status.Code(err) {
	case codes.Unimplemented:
		return "the server does not serve Falco's outputs service: enable grpc and grpc_output in falco.yaml (Falco <= 0.43; Falco >= 0.44 has no gRPC output, use http_output)"
	case codes.Unauthenticated, codes.PermissionDenied:
		return "Falco refused the client: check inputs.grpc cert_file, key_file and ca_file against Falco's grpc.private_key, cert_chain and root_certs"
	}
	return ""
}

func (g *GRPC) target() string {
	if g.cfg.Hostname != "" {
		return fmt.Sprintf("%s:%d", g.cfg.Hostname, g.cfg.Port)
	}
	return g.cfg.UnixSocket
}

func (g *GRPC) clientConfig() *client.Config {
	opts := []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: g.cfg.BackoffInitial, Multiplier: 2, Jitter: 0.2, MaxDelay: g.cfg.BackoffMax},
			MinConnectTimeout: 10 * time.Second,
		}),
	}
	if g.cfg.KeepaliveTime > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: g.cfg.KeepaliveTime, Timeout: g.cfg.KeepaliveTimeout,
		}))
	}
	if g.cfg.Hostname != "" {
		return &client.Config{
			Hostname: g.cfg.Hostname, Port: g.cfg.Port,
			CertFile: g.cfg.CertFile, KeyFile: g.cfg.KeyFile, CARootFile: g.cfg.CAFile,
			DialOptions: opts,
		}
	}
	return &client.Config{UnixSocketPath: g.cfg.UnixSocket, DialOptions: opts}
}

// session runs one connection and one sub stream until it breaks or ctx
// ends. Events received before the break are still accepted.
func (g *GRPC) session(ctx context.Context, onSubscribed func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := client.NewForConfig(sctx, g.clientConfig())
	if err != nil {
		return fmt.Errorf("connect %s: %w", g.target(), err)
	}
	defer c.Close()
	oc, err := c.Outputs()
	if err != nil {
		return fmt.Errorf("outputs client: %w", err)
	}
	codec, err := newWireCodec()
	if err != nil {
		return err
	}
	stream, err := oc.Sub(sctx, grpc.ForceCodecV2(codec))
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", g.target(), err)
	}
	if err := stream.Send(&outputs.Request{}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server already ended the stream: its status says why
			// (Unimplemented when grpc_output is off, for one).
			if rerr := stream.RecvMsg(new(wireResponse)); rerr != nil && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
		}
		return fmt.Errorf("subscribe %s: send request: %w", g.target(), err)
	}

	// Falco writes what it has queued after each request, then waits for
	// the next one: poll. Only this goroutine sends on the stream.
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		t := time.NewTicker(g.cfg.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := stream.Send(&outputs.Request{}); err != nil {
					return // Recv reports why
				}
			}
		}
	}()

	// The receiver only receives (protobuf decoding); conversion to Events
	// happens in the accepting goroutine, so the two stages use two cores.
	evc := make(chan *wireResponse, 2*g.cfg.BatchSize)
	var recvErr error
	go func() {
		defer close(evc)
		for {
			res := new(wireResponse)
			if err := stream.RecvMsg(res); err != nil {
				recvErr = err
				return
			}
			// Blocking is safe: evc is read until it is closed, and an event
			// in hand must not be dropped on shutdown.
			evc <- res
		}
	}()

	pending := g.acceptLoop(ctx, evc, onSubscribed)
	cancel()
	// The receiver stops once the stream is cancelled; whatever it had
	// already received is accepted before returning.
	for res := range evc {
		if ev, ok := g.convert(res); ok {
			pending = append(pending, ev)
		}
	}
	<-pollDone
	if len(pending) > 0 {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
		defer dcancel()
		if _, err := g.accept(dctx, pending); err != nil {
			g.log.Error().Err(err).Int("events", len(pending)).Msg("grpc events received but not accepted at shutdown")
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("receive: %w", recvErr)
}

// convert turns a response into an Event, counting the ones it rejects.
func (g *GRPC) convert(res *wireResponse) (scorer.Event, bool) {
	ev, err := res.event()
	if err != nil {
		g.m.rejected.WithLabelValues(SourceGRPC, decodeReason(err)).Inc()
		g.log.Debug().Err(err).Msg("grpc event rejected")
		return scorer.Event{}, false
	}
	return ev, true
}

// acceptLoop accepts batches of events received back to back until evc is
// closed (it then returns nil) or ctx ends (it then returns the batch it
// could not accept, for the shutdown drain).
//
// The stream counts as up (subscribed is called once) when its first
// response arrives, or when it has stayed open for streamUpAfter: a server
// that refuses the stream (Unimplemented, PermissionDenied) answers at once,
// and must not count as a stream that was up and then lost.
func (g *GRPC) acceptLoop(ctx context.Context, evc <-chan *wireResponse, subscribed func()) []scorer.Event {
	max := g.cfg.BatchSize
	upTimer := time.NewTimer(streamUpAfter)
	defer upTimer.Stop()
	upC := upTimer.C
	markUp := func() {
		if subscribed != nil {
			subscribed()
			subscribed, upC = nil, nil
		}
	}
	for {
		var first *wireResponse
		select {
		case res, ok := <-evc:
			if !ok {
				return nil
			}
			first = res
			markUp()
		case <-upC:
			markUp()
			continue
		case <-ctx.Done():
			return nil
		}
		batch := make([]scorer.Event, 0, max)
		if ev, ok := g.convert(first); ok {
			batch = append(batch, ev)
		}
	fill:
		for len(batch) < max {
			select {
			case res, ok := <-evc:
				if !ok {
					break fill
				}
				if ev, ok := g.convert(res); ok {
					batch = append(batch, ev)
				}
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			continue
		}
		if rest, err := g.accept(ctx, batch); err != nil {
			return rest // accept retries until ctx ends
		}
	}
}

// accept calls Accept until it succeeds or ctx ends, and returns the events
// it did not accept when ctx ended. Every error is retried, since the events
// already left Falco and giving up would lose them (not reading the stream
// meanwhile pushes back to Falco), except ErrTooLarge: retrying cannot help,
// so the events of the batch are accepted one by one and the ones too large
// for the journal are dropped, counted and logged. One log line per episode.
func (g *GRPC) accept(ctx context.Context, batch []scorer.Event) ([]scorer.Event, error) {
	wait := 10 * time.Millisecond
	var logged error
	for {
		err := g.acc.Accept(ctx, SourceGRPC, batch)
		if err == nil {
			g.m.received.WithLabelValues(SourceGRPC).Add(float64(len(batch)))
			if logged != nil {
				g.log.Info().Msg("grpc accept recovered")
			}
			return nil, nil
		}
		if errors.Is(err, scorer.ErrTooLarge) {
			if len(batch) == 1 {
				g.m.rejected.WithLabelValues(SourceGRPC, reasonTooLarge).Inc()
				g.log.Warn().Err(err).Str("rule", batch[0].Rule).Msg("grpc event dropped: larger than the journal takes (raise store.max_event_bytes to keep such events)")
				return nil, nil
			}
			for i := range batch {
				if _, err := g.accept(ctx, batch[i:i+1]); err != nil {
					return batch[i:], err
				}
			}
			return nil, nil
		}
		reason := reasonUnavailable
		if errors.Is(err, scorer.ErrOverloaded) {
			reason = reasonOverloaded
		}
		g.m.retries.WithLabelValues(SourceGRPC, reason).Inc()
		if logged == nil || err.Error() != logged.Error() {
			lvl := g.log.Warn()
			if reason == reasonOverloaded {
				lvl = g.log.Debug()
			}
			lvl.Err(err).Int("events", len(batch)).Msg("grpc accept failed, retrying")
			logged = err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return batch, fmt.Errorf("accept %d events: %w", len(batch), ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// EventFromResponse converts one gRPC output to an Event equal to the one
// DecodeJSON gives for the same Falco event, with Raw set to its Falco JSON.
// Falco sends output_fields as text there; "<NA>" values are dropped as
// DecodeJSON drops them. An empty Source falls back to the deprecated enum.
func EventFromResponse(res *outputs.Response) (scorer.Event, error) {
	ts := res.GetTime()
	if ts == nil {
		return scorer.Event{}, &scorer.DecodeError{Reason: scorer.ReasonMissingField, Msg: `missing required field "time"`}
	}
	if err := ts.CheckValid(); err != nil {
		return scorer.Event{}, &scorer.DecodeError{Reason: scorer.ReasonInvalidValue, Msg: fmt.Sprintf("field \"time\": %v", err)}
	}
	//lint:ignore SA1019 older Falco versions fill only the deprecated source enum
	deprecated := res.GetSourceDeprecated()
	return buildEvent(ts.AsTime().UTC(), int32(res.GetPriority()), res.GetRule(), res.GetOutput(), res.GetSource(),
		deprecated, res.GetHostname(), res.GetTags(), fieldsWithoutNA(res.GetOutputFields()))
}

// fieldsWithoutNA returns m's entries as Fields, "<NA>" values dropped.
func fieldsWithoutNA(m map[string]string) scorer.Fields {
	f := make([]scorer.Field, 0, len(m))
	for k, v := range m {
		if v != scorer.NA {
			f = append(f, scorer.Field{Name: k, Value: v})
		}
	}
	return scorer.SortFields(f)
}
