package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// runGRPC runs g until the returned stop is called; stop checks Run's result.
func runGRPC(t *testing.T, g *GRPC) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { stopRun(t, cancel, done) }) }
}

func stopRun(t *testing.T, cancel context.CancelFunc, done chan error) {
	t.Helper()
	{
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("GRPC.Run() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("GRPC.Run did not return within 10s of cancel")
		}
	}
}

func rules(evs []scorer.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Rule)
	}
	sort.Strings(out)
	return out
}

func wantRules(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, "r"+itoa(i))
	}
	sort.Strings(out)
	return out
}

// TestGRPCReconnectsAfterRestart is must-show 2.
func TestGRPCReconnectsAfterRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := socketPath(t)
	first := newFakeFalco(16)
	first.serve(t, path)
	rec := &recorder{}
	g := newTestGRPC(t, path, rec, prometheus.NewRegistry())
	stop := runGRPC(t, g)
	defer stop()

	for i := range 5 {
		first.queue <- numberedResponse(i)
	}
	scorertest.WaitFor(t, "5 events before the restart", func() bool { return len(rec.got()) == 5 })
	scorertest.WaitFor(t, "Ready", g.Ready)

	first.stop()
	scorertest.WaitFor(t, "Ready() = false after the server stopped", func() bool { return !g.Ready() })
	time.Sleep(50 * time.Millisecond) // a few failed attempts against the missing socket

	second := newFakeFalco(16)
	for i := 5; i < 10; i++ {
		second.queue <- numberedResponse(i)
	}
	second.serve(t, path)
	defer second.stop()
	scorertest.WaitFor(t, "10 events after the restart", func() bool { return len(rec.got()) >= 10 })
	for i := 10; i < 15; i++ { // and events sent while connected again
		second.queue <- numberedResponse(i)
	}
	scorertest.WaitFor(t, "15 events", func() bool { return len(rec.got()) >= 15 })
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show up

	if d := cmp.Diff(wantRules(0, 15), rules(rec.got())); d != "" {
		t.Errorf("events received (-want +got), each must arrive once:\n%s", d)
	}
	if got := value(g.m.reconnects); got != 1 {
		t.Errorf("grpc_reconnects_total = %v, want 1", got)
	}
	if got := value(g.m.received.WithLabelValues(SourceGRPC)); got != 15 {
		t.Errorf("events_received_total{source=grpc} = %v, want 15", got)
	}
	if !g.Ready() {
		t.Errorf("Ready() after reconnect = false, want true")
	}
	stop()
}

// TestGRPCRetriesOverload: an event Falco already sent is not dropped when
// Accept says overloaded (or unavailable); it is retried until accepted.
func TestGRPCRetriesOverload(t *testing.T) {
	path := socketPath(t)
	falco := newFakeFalco(8)
	falco.serve(t, path)
	defer falco.stop()
	rec := &recorder{fail: func(call int) error {
		switch call {
		case 1, 2:
			return scorer.ErrOverloaded
		case 3:
			return scorer.ErrUnavailable
		}
		return nil
	}}
	g := newTestGRPC(t, path, rec, prometheus.NewRegistry())
	for i := range 3 {
		falco.queue <- numberedResponse(i)
	}
	stop := runGRPC(t, g)
	defer stop()
	scorertest.WaitFor(t, "3 events", func() bool { return len(rec.got()) >= 3 })
	stop()
	if d := cmp.Diff(wantRules(0, 3), rules(rec.got())); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if got := value(g.m.retries.WithLabelValues(SourceGRPC, reasonOverloaded)); got != 2 {
		t.Errorf("retries{reason=overloaded} = %v, want 2", got)
	}
	if got := value(g.m.retries.WithLabelValues(SourceGRPC, reasonUnavailable)); got != 1 {
		t.Errorf("retries{reason=unavailable} = %v, want 1", got)
	}
}

// TestGRPCShutdownAcceptsReceived: events received when Run's context ends
// are accepted before Run returns.
func TestGRPCShutdownAcceptsReceived(t *testing.T) {
	path := socketPath(t)
	falco := newFakeFalco(64)
	falco.serve(t, path)
	defer falco.stop()
	gate := make(chan struct{})
	rec := &recorder{}
	acc := acceptFunc(func(ctx context.Context, src string, evs []scorer.Event) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rec.Accept(ctx, src, evs)
	})
	cfg := newTestGRPC(t, path, acc, nil).cfg
	cfg.BatchSize = 4
	g, err := NewGRPC(cfg, acc, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		falco.queue <- numberedResponse(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	scorertest.WaitFor(t, "the server to drain its queue", func() bool { return len(falco.queue) == 0 })
	time.Sleep(50 * time.Millisecond)
	cancel() // Accept is blocked: the first batch is in its retry loop, the rest buffered
	time.Sleep(20 * time.Millisecond)
	close(gate)
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
	if d := cmp.Diff(wantRules(0, 10), rules(rec.got())); d != "" {
		t.Errorf("events accepted by shutdown (-want +got):\n%s", d)
	}
}

func TestEventFromResponse(t *testing.T) {
	base := func(mod func(*outputs.Response)) *outputs.Response {
		r := numberedResponse(1)
		mod(r)
		return r
	}
	tests := []struct {
		name       string
		res        *outputs.Response
		wantSource string
		wantReason string
	}{
		{"source string", base(func(r *outputs.Response) { r.Source = "k8s_audit" }), "k8s_audit", ""},
		{"deprecated source enum", base(func(r *outputs.Response) {
			r.Source = ""
			//lint:ignore SA1019 older Falco versions fill only the deprecated source enum
			r.SourceDeprecated = schema.Source_K8S_AUDIT
		}), "k8s_audit", ""},
		{"no time", base(func(r *outputs.Response) { r.Time = nil }), "", scorer.ReasonMissingField},
		{"invalid time", base(func(r *outputs.Response) { r.Time = &timestamppb.Timestamp{Nanos: -1} }), "", scorer.ReasonInvalidValue},
		{"priority out of range", base(func(r *outputs.Response) { r.Priority = schema.Priority(8) }), "", scorer.ReasonInvalidValue},
		{"negative priority", base(func(r *outputs.Response) { r.Priority = schema.Priority(-1) }), "", scorer.ReasonInvalidValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := EventFromResponse(tc.res)
			if tc.wantReason != "" {
				if got := decodeReason(err); err == nil || got != tc.wantReason {
					t.Fatalf("EventFromResponse() error = %v (reason %q), want reason %q", err, got, tc.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("EventFromResponse() error = %v", err)
			}
			if ev.Source != tc.wantSource {
				t.Errorf("EventFromResponse().Source = %q, want %q", ev.Source, tc.wantSource)
			}
			back, err := scorer.DecodeJSON(ev.Raw)
			if err != nil {
				t.Fatalf("DecodeJSON(Raw) error = %v", err)
			}
			if d := cmp.Diff(ev, back, ignoreRaw...); d != "" {
				t.Errorf("Raw does not decode to the Event (-event +decoded):\n%s", d)
			}
		})
	}
}

// TestGRPCMTLS connects over TCP with mutual TLS, as Falco's network gRPC
// server requires.
func TestGRPCMTLS(t *testing.T) {
	p := scorertest.NewPKI(t)
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(p.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	falco := newFakeFalco(4)
	falco.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})))
	outputs.RegisterServiceServer(falco.srv, falco)
	falco.done = make(chan struct{})
	go func() { defer close(falco.done); _ = falco.srv.Serve(ln) }()
	defer falco.stop()
	falco.queue <- sampleResponse()

	cfg := DefaultGRPCConfig()
	cfg.Hostname, cfg.Port = "127.0.0.1", uint16(ln.Addr().(*net.TCPAddr).Port)
	cfg.CertFile, cfg.KeyFile, cfg.CAFile = p.ClientCert, p.ClientKey, p.CAFile
	cfg.BackoffInitial, cfg.BackoffMax, cfg.PollInterval = 10*time.Millisecond, 100*time.Millisecond, 5*time.Millisecond
	rec := &recorder{}
	g, err := NewGRPC(cfg, rec, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runGRPC(t, g)
	defer stop()
	scorertest.WaitFor(t, "the event over mTLS", func() bool { return len(rec.got()) == 1 })
}

// TestGRPCDropsEventTooLargeForJournal: an event the journal refuses as too
// large (ErrTooLarge) is dropped and counted, and the events around it in
// the same batch and after it are accepted; retrying it forever would stop
// the input for good.
func TestGRPCDropsEventTooLargeForJournal(t *testing.T) {
	path := socketPath(t)
	falco := newFakeFalco(8)
	falco.serve(t, path)
	defer falco.stop()
	rec := &recorder{}
	journal := acceptFunc(func(ctx context.Context, source string, evs []scorer.Event) error {
		for _, ev := range evs {
			if len(ev.Output) > 1000 {
				return fmt.Errorf("append: %w", scorer.ErrTooLarge)
			}
		}
		return rec.Accept(ctx, source, evs)
	})
	big := numberedResponse(1)
	big.Output = strings.Repeat("x", 2000)
	falco.queue <- numberedResponse(0)
	falco.queue <- big
	falco.queue <- numberedResponse(2)
	g := newTestGRPC(t, path, journal, prometheus.NewRegistry())
	stop := runGRPC(t, g)
	defer stop()
	scorertest.WaitFor(t, "r0 and r2", func() bool { return len(rec.got()) >= 2 })
	falco.queue <- numberedResponse(3)
	scorertest.WaitFor(t, "r3 after the dropped event", func() bool { return len(rec.got()) >= 3 })
	stop()
	if d := cmp.Diff([]string{"r0", "r2", "r3"}, rules(rec.got())); d != "" {
		t.Errorf("accepted (-want +got):\n%s", d)
	}
	if got := value(g.m.rejected.WithLabelValues(SourceGRPC, reasonTooLarge)); got != 1 {
		t.Errorf("rejected{reason=too_large} = %v, want 1", got)
	}
}

// refusingFalco refuses every sub stream at once, as a gRPC server without
// Falco's outputs service (or with grpc_output disabled) does.
type refusingFalco struct {
	outputs.UnimplementedServiceServer
}

func (refusingFalco) Sub(outputs.Service_SubServer) error {
	return status.Error(codes.Unimplemented, "grpc_output disabled")
}

// TestGRPCRefusedStreamIsNotUp: a stream the server refuses at once never
// counts as subscribed: no readiness, no "reconnected", and the retries back
// off (fewer attempts than a reset-to-initial backoff would make) with one
// warning that says what to check.
func TestGRPCRefusedStreamIsNotUp(t *testing.T) {
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	outputs.RegisterServiceServer(srv, refusingFalco{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	var logs syncBuffer
	c := DefaultGRPCConfig()
	c.Enabled = true
	c.UnixSocket = "unix://" + path
	c.BackoffInitial = 10 * time.Millisecond
	c.BackoffMax = 200 * time.Millisecond
	g, err := NewGRPC(c, &recorder{}, zerolog.New(&logs).Level(zerolog.InfoLevel), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	stop := runGRPC(t, g)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		ready = ready || g.Ready()
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	out := logs.String()
	if ready {
		t.Error("input reported ready on a refused stream")
	}
	if n := strings.Count(out, "grpc stream lost") + strings.Count(out, "grpc reconnected"); n != 0 {
		t.Errorf("%d stream lost/reconnected lines for a stream that never came up:\n%s", n, out)
	}
	if got := value(g.m.reconnects); got != 0 {
		t.Errorf("reconnects = %v, want 0", got)
	}
	if n := strings.Count(out, "grpc connect failed"); n != 1 || !strings.Contains(out, "grpc_output") {
		t.Errorf("want one warning with a hint about grpc_output, got:\n%s", out)
	}
}
