package source

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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

// waitFor polls cond every 5ms until it holds or d passes. d is at least
// 30 s: the deadline only turns a hang into a failure, and a busy machine
// must not reach it.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d = max(d, 30*time.Second)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

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

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir, and returns their paths.
type pki struct{ caFile, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t testing.TB) pki {
	t.Helper()
	dir := t.TempDir()
	caKey := mustKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ip bool) (certPEM, keyPEM []byte) {
		k := mustKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := pki{
		caFile: filepath.Join(dir, "ca.crt"), serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"),
		clientCert: filepath.Join(dir, "client.crt"), clientKey: filepath.Join(dir, "client.key"),
	}
	write := func(path string, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	sc, sk := issue(2, "server", x509.ExtKeyUsageServerAuth, true)
	write(p.serverCert, sc)
	write(p.serverKey, sk)
	cc, ck := issue(3, "falco", x509.ExtKeyUsageClientAuth, false)
	write(p.clientCert, cc)
	write(p.clientKey, ck)
	return p
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// syncBuffer captures a logger's output written concurrently.
type syncBuffer = scorertest.SyncBuffer
