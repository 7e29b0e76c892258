package source

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// BenchmarkGRPCRatio measures the gRPC input against a baseline in the same
// run, on the same in-process Falco outputs server (client-go's generated
// service, sending pre-encoded events over a unix socket): the baseline is
// client-go's own generated client receiving b.N events into
// outputs.Response and doing nothing with them (a no-op consumer); the
// input then receives b.N events, decodes them, converts them to Events
// and hands them in batches to a no-op Acceptor. x-client-go is the
// input's rate divided by the baseline's; run with -count for medians
// (benchstat). The machine's load moves both rates together, not their
// ratio, which is why the ratio is the figure to compare across runs.
func BenchmarkGRPCRatio(b *testing.B) {
	path := socketPath(b)
	wire, err := proto.Marshal(sampleResponse())
	if err != nil {
		b.Fatal(err)
	}
	codec, err := newWireCodec()
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{codec}))
	outputs.RegisterServiceServer(gs, &rawFalco{n: b.N, msg: preEncoded(wire)})
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	b.ReportAllocs()
	b.ResetTimer()

	base := clientGoReceive(b, path, b.N)

	acc := &counting{}
	g := newTestGRPC(b, path, acc, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- g.Run(ctx) }()
	for acc.n.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	input := time.Since(start)
	b.StopTimer()
	cancel()
	<-done

	baseRate := float64(b.N) / base.Seconds()
	inputRate := float64(b.N) / input.Seconds()
	b.ReportMetric(baseRate, "client-go-events/s")
	b.ReportMetric(inputRate, "input-events/s")
	b.ReportMetric(inputRate/baseRate, "x-client-go")
}

// clientGoReceive subscribes with client-go's generated outputs client and
// receives n events, discarding them, and returns how long that took from
// the subscription on.
func clientGoReceive(b *testing.B, path string, n int) time.Duration {
	b.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	stream, err := outputs.NewServiceClient(conn).Sub(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := stream.Send(&outputs.Request{}); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := stream.Recv(); err != nil {
			b.Fatalf("Recv %d of %d: %v", i, n, err)
		}
	}
	d := time.Since(start)
	_ = stream.CloseSend()
	return d
}
