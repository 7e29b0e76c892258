package source

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// counting is a no-op Acceptor that counts events.
type counting struct{ n atomic.Int64 }

func (c *counting) Accept(_ context.Context, _ string, evs []scorer.Event) error {
	c.n.Add(int64(len(evs)))
	return nil
}

func reportRate(b *testing.B, events int64, start time.Time) {
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkHTTPIngest: one event per request through the handler, in
// process, with a no-op Acceptor.
func BenchmarkHTTPIngest(b *testing.B) {
	acc := &counting{}
	h, err := NewHTTP(testHTTPConfig(), acc, nopLog(), nil)
	if err != nil {
		b.Fatal(err)
	}
	handler := h.Handler()
	body := []byte(sampleJSON)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("POST / = %d %s", w.Code, w.Body)
		}
	}
	reportRate(b, acc.n.Load(), start)
}

// BenchmarkNDJSON: ReadNDJSON over an in-memory capture.
func BenchmarkNDJSON(b *testing.B) {
	const lines = 10000
	data := []byte(strings.Repeat(sampleJSON+"\n", lines))
	acc := &counting{}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ReadNDJSON(context.Background(), bytes.NewReader(data), acc, NDJSONOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, acc.n.Load(), start)
}

// BenchmarkGRPC: events/s from an in-process Falco over a unix socket,
// received, decoded, converted (Raw included) and accepted in batches. The
// fake server sends pre-encoded messages, as Falco's C++ server runs in its
// own process; it still shares the two cores with the client here.
func BenchmarkGRPC(b *testing.B) {
	path := socketPath(b)
	wire, err := proto.Marshal(sampleResponse())
	if err != nil {
		b.Fatal(err)
	}
	codec, err := newWireCodec()
	if err != nil {
		b.Fatal(err)
	}
	srv := &rawFalco{n: b.N, msg: preEncoded(wire)}
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{codec}))
	outputs.RegisterServiceServer(gs, srv)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	acc := &counting{}
	g := newTestGRPC(b, path, acc, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	go func() { done <- g.Run(ctx) }()
	for acc.n.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	reportRate(b, acc.n.Load(), start)
	cancel()
	<-done
}

// preEncoded is a message already in protobuf wire form.
type preEncoded []byte

// rawCodec sends preEncoded as is and delegates everything else.
type rawCodec struct{ wireCodec }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(preEncoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(p)}, nil
	}
	return c.wireCodec.Marshal(v)
}

// rawFalco sends n copies of msg on the first sub stream, Falco-style
// (after a request), then waits for the stream to end.
type rawFalco struct {
	outputs.UnimplementedServiceServer
	n   int
	msg preEncoded
}

func (f *rawFalco) Sub(stream outputs.Service_SubServer) error {
	if _, err := stream.Recv(); err != nil {
		return nil
	}
	for range f.n {
		if err := stream.SendMsg(f.msg); err != nil {
			return err
		}
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	}
}

// BenchmarkGRPCConvert: the client-side CPU cost per event without the
// transport: protobuf decoding (what Recv does) and EventFromResponse.
func BenchmarkGRPCConvert(b *testing.B) {
	wire, err := proto.Marshal(sampleResponse())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var res outputs.Response
			if err := proto.Unmarshal(wire, &res); err != nil {
				b.Fatal(err)
			}
		}
	})
	res := sampleResponse()
	b.Run("event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EventFromResponse(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
