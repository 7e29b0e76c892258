package source

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// sampleJSON is one Falco event as http_output posts it, with numbers,
// booleans, null and "<NA>" among output_fields.
const sampleJSON = `{"hostname":"node-1","output":"12:00:00.123456789: Notice A shell was spawned in a container (user=root container_id=4e5c1a2b3c4d)","priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["T1059","container","maturity_stable","mitre_execution","shell"],"time":"2026-11-24T12:00:00.123456789Z","output_fields":{"container.id":"4e5c1a2b3c4d","container.image.repository":"docker.io/library/nginx","container.image.tag":"1.27","container.name":"<NA>","evt.arg.ratio":0.5,"evt.time":1795953600123456789,"evt.type":"execve","fd.num":-1,"k8s.ns.name":"shop","k8s.pod.name":null,"proc.cmdline":"bash -i","proc.is_exe_upper_layer":false,"proc.name":"bash","proc.pid":4242,"proc.tty":true,"user.uid":0}}`

// sampleResponse is the same event as Falco's gRPC output sends it: every
// output field as text.
func sampleResponse() *outputs.Response {
	return &outputs.Response{
		Time:     timestamppb.New(time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)),
		Priority: schema.Priority_NOTICE,
		Rule:     "Terminal shell in container",
		Output:   "12:00:00.123456789: Notice A shell was spawned in a container (user=root container_id=4e5c1a2b3c4d)",
		Hostname: "node-1",
		Source:   "syscall",
		Tags:     []string{"T1059", "container", "maturity_stable", "mitre_execution", "shell"},
		OutputFields: map[string]string{
			"container.id": "4e5c1a2b3c4d", "container.image.repository": "docker.io/library/nginx",
			"container.image.tag": "1.27", "container.name": "<NA>", "evt.arg.ratio": "0.5",
			"evt.time": "1795953600123456789", "evt.type": "execve", "fd.num": "-1", "k8s.ns.name": "shop",
			"k8s.pod.name": "<NA>", "proc.cmdline": "bash -i", "proc.is_exe_upper_layer": "false",
			"proc.name": "bash", "proc.pid": "4242", "proc.tty": "true", "user.uid": "0",
		},
	}
}

// numbered returns a minimal event whose rule carries i.
func numberedResponse(i int) *outputs.Response {
	return &outputs.Response{
		Time:         timestamppb.New(time.Date(2026, 11, 24, 12, 0, 0, i, time.UTC)),
		Priority:     schema.Priority_WARNING,
		Rule:         "r" + itoa(i),
		Source:       "syscall",
		OutputFields: map[string]string{"proc.pid": itoa(i), "evt.type": "openat"},
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// recorder is a fake Acceptor: it records events and answers what fail
// returns (nil when fail is nil).
type recorder struct {
	mu     sync.Mutex
	events []scorer.Event
	calls  int
	fail   func(call int) error
}

func (r *recorder) Accept(_ context.Context, _ string, evs []scorer.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls); err != nil {
			return err
		}
	}
	r.events = append(r.events, evs...)
	return nil
}

func (r *recorder) got() []scorer.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]scorer.Event(nil), r.events...)
}

// acceptFunc adapts a function to scorer.Acceptor.
type acceptFunc func(ctx context.Context, source string, evs []scorer.Event) error

func (f acceptFunc) Accept(ctx context.Context, source string, evs []scorer.Event) error {
	return f(ctx, source, evs)
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

// fakeFalco serves the outputs service like Falco does: after each request
// on a sub stream it writes everything queued, then waits for the next
// request.
type fakeFalco struct {
	outputs.UnimplementedServiceServer
	queue chan *outputs.Response
	srv   *grpc.Server
	done  chan struct{}
}

func newFakeFalco(queueLen int) *fakeFalco {
	return &fakeFalco{queue: make(chan *outputs.Response, queueLen)}
}

func (f *fakeFalco) Sub(stream outputs.Service_SubServer) error {
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
		for {
			select {
			case r := <-f.queue:
				if err := stream.Send(r); err != nil {
					return err
				}
				continue
			default:
			}
			break
		}
	}
}

// serve starts f on a unix socket at path.
func (f *fakeFalco) serve(t testing.TB, path string) {
	t.Helper()
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	f.srv = grpc.NewServer()
	outputs.RegisterServiceServer(f.srv, f)
	f.done = make(chan struct{})
	go func() { defer close(f.done); _ = f.srv.Serve(ln) }()
}

func (f *fakeFalco) stop() {
	f.srv.Stop()
	<-f.done
}

// socketPath returns a short unix socket path (sun_path is ~108 bytes).
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "fsrc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "falco.sock")
}

// syncBuffer captures a logger's output written concurrently.
type syncBuffer = scorertest.SyncBuffer
