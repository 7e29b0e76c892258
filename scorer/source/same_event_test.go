package source

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var ignoreRaw = []cmp.Option{cmpopts.IgnoreFields(scorer.Event{}, "Raw"), cmpopts.EquateEmpty()}

// TestSameEventEveryInput is must-show 1: one Falco event over HTTP, over
// gRPC and as an NDJSON line decodes to equal Events, pinned by a golden file.
func TestSameEventEveryInput(t *testing.T) {
	// HTTP, through the handler.
	httpRec := &recorder{}
	h, err := NewHTTP(testHTTPConfig(), httpRec, nopLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(sampleJSON))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("POST / = %d %s, want 200", w.Code, w.Body)
	}

	// gRPC, from an in-process Falco.
	path := socketPath(t)
	falco := newFakeFalco(1)
	falco.serve(t, path)
	defer falco.stop()
	falco.queue <- sampleResponse()
	grpcRec := &recorder{}
	g := newTestGRPC(t, path, grpcRec, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	scorertest.WaitFor(t, "the gRPC event", func() bool { return len(grpcRec.got()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("GRPC.Run() = %v, want nil", err)
	}

	// NDJSON.
	ndRec := &recorder{}
	if _, err := ReadNDJSON(context.Background(), strings.NewReader("\n"+sampleJSON+"\n"), ndRec, NDJSONOptions{}); err != nil {
		t.Fatal(err)
	}

	viaHTTP, viaGRPC, viaNDJSON := httpRec.got(), grpcRec.got(), ndRec.got()
	if len(viaHTTP) != 1 || len(viaGRPC) != 1 || len(viaNDJSON) != 1 {
		t.Fatalf("events: http %d, grpc %d, ndjson %d; want 1 each", len(viaHTTP), len(viaGRPC), len(viaNDJSON))
	}
	if d := cmp.Diff(viaHTTP[0], viaGRPC[0], ignoreRaw...); d != "" {
		t.Errorf("HTTP and gRPC events differ (-http +grpc):\n%s", d)
	}
	if d := cmp.Diff(viaHTTP[0], viaNDJSON[0], ignoreRaw...); d != "" {
		t.Errorf("HTTP and NDJSON events differ (-http +ndjson):\n%s", d)
	}
	if got := string(viaHTTP[0].Raw); got != sampleJSON {
		t.Errorf("HTTP Raw = %s, want the posted bytes", got)
	}
	// gRPC's Raw is Falco JSON that decodes to the same Event.
	back, err := scorer.DecodeJSON(viaGRPC[0].Raw)
	if err != nil {
		t.Fatalf("DecodeJSON(gRPC Raw) error: %v", err)
	}
	if d := cmp.Diff(viaGRPC[0], back, ignoreRaw...); d != "" {
		t.Errorf("gRPC Raw does not decode to its Event (-event +decoded):\n%s", d)
	}

	got, err := json.MarshalIndent(viaHTTP[0], "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	scorertest.Golden(t, filepath.Join("testdata", "event.golden"), got, *update, "Event JSON")
}

func testHTTPConfig() HTTPConfig {
	c := DefaultHTTPConfig()
	c.Listen = "127.0.0.1:0"
	c.ShutdownTimeout = 2 * time.Second
	return c
}

func newTestGRPC(t testing.TB, path string, acc scorer.Acceptor, reg prometheus.Registerer) *GRPC {
	t.Helper()
	c := DefaultGRPCConfig()
	c.Enabled = true
	c.UnixSocket = "unix://" + path
	c.BackoffInitial = 10 * time.Millisecond
	c.BackoffMax = 100 * time.Millisecond
	c.PollInterval = 5 * time.Millisecond
	g, err := NewGRPC(c, acc, nopLog(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
