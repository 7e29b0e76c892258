package main

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
)

// memJournal is a Journal without I/O: it numbers events and counts what
// the pipeline completes.
type memJournal struct {
	next   atomic.Uint64
	done   atomic.Int64
	alerts atomic.Int64
}

func (j *memJournal) Append(_ context.Context, raws [][]byte) ([]uint64, error) {
	end := j.next.Add(uint64(len(raws)))
	seqs := make([]uint64, len(raws))
	for i := range seqs {
		seqs[i] = end - uint64(len(raws)) + uint64(i) + 1
	}
	return seqs, nil
}

func (j *memJournal) Complete(done []uint64, alerts []scorer.OutboxPut) error {
	j.done.Add(int64(len(done)))
	j.alerts.Add(int64(len(alerts)))
	return nil
}

func (j *memJournal) Replay(func(uint64, []byte) error) error { return nil }

// decodedPool generates n events of m and decodes them as the HTTP input
// would, so that the benchmarks time the pipeline stage alone.
func decodedPool(tb testing.TB, m Mix, n int) []scorer.Event {
	tb.Helper()
	g, err := NewGenerator(m)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]scorer.Event, n)
	t0 := time.Now()
	var buf []byte
	for i := range out {
		buf, _ = g.Append(buf[:0], t0.Add(time.Duration(i)*20*time.Microsecond))
		ev, err := scorer.DecodeJSON(buf)
		if err != nil {
			tb.Fatalf("DecodeJSON(%s) = %v", buf, err)
		}
		out[i] = ev
	}
	return out
}

// pipe is a running pipeline over a memJournal.
type pipe struct {
	p      *pipeline.Pipeline
	j      *memJournal
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	fed    int64
}

func startPipeline(tb testing.TB, cfg pipeline.Config) *pipe {
	tb.Helper()
	j := &memJournal{}
	reg := prometheus.NewRegistry()
	p, err := pipeline.New(cfg, pipeline.Deps{Journal: j, Sinks: []string{"kafka"}}, zerolog.Nop(), reg)
	if err != nil {
		tb.Fatalf("pipeline.New() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pp := &pipe{p: p, j: j, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { pp.done <- p.Run(ctx) }()
	<-p.Ready()
	return pp
}

func (pp *pipe) stop() {
	if pp.cancel != nil {
		pp.cancel()
		<-pp.done
		pp.cancel = nil
	}
}

// feed accepts events in batches, waiting while the queue is full.
func (pp *pipe) feed(tb testing.TB, events []scorer.Event, batch int) {
	for i := 0; i < len(events); i += batch {
		evs := events[i:min(i+batch, len(events))]
		for {
			err := pp.p.Accept(context.Background(), "bench", evs)
			if err == nil {
				break
			}
			if !errors.Is(err, scorer.ErrOverloaded) {
				tb.Fatalf("Accept() = %v", err)
			}
			time.Sleep(50 * time.Microsecond)
		}
		pp.fed += int64(len(evs))
	}
}

// drain waits until every fed event is completed.
func (pp *pipe) drain() {
	for pp.j.done.Load() < pp.fed {
		time.Sleep(50 * time.Microsecond)
	}
}

// gauge reads a gauge (summed over labels) from the pipeline's registry.
func (pp *pipe) gauge(name string) float64 {
	mfs, _ := pp.reg.Gather()
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetGauge().GetValue()
		}
	}
	return v
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkPipeline times the pipeline stage without I/O: Accept (journal
// in memory), enrich, shard, sequence state, scoring, verdict, learning,
// alert encoding and the journal→outbox commit, over the default traffic
// mix (200 images, 4,000 sequences, one event in five a Falco alert).
// ns/op is per event, on the default 2 workers.
func BenchmarkPipeline(b *testing.B) {
	pool := decodedPool(b, DefaultMix(), 50_000)
	pp := startPipeline(b, pipeline.DefaultConfig())
	defer pp.stop()
	pp.feed(b, pool, 64) // warm: images and sequences exist
	pp.drain()
	b.ReportAllocs()
	b.ResetTimer()
	for fed := 0; fed < b.N; {
		n := min(len(pool), b.N-fed)
		pp.feed(b, pool[:n], 64)
		fed += n
	}
	pp.drain()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPipelineScale: the same stage with 10,000 images and 100,000
// live sequences (10 processes per image). It reports the heap held by the
// pipeline's state (models, sequences, caches) and the per-event cost at
// that scale. Its set-up streams 600,000 events: run it with a fixed
// -benchtime (e.g. 200000x) so that the set-up runs once.
func BenchmarkPipelineScale(b *testing.B) {
	m := Mix{Images: *scaleImages, ContainersPerImage: 1, ProcsPerContainer: *scaleProcs, AlertRatio: 0.01, Seed: 11}
	seqs := m.Images * m.ProcsPerContainer
	pool := decodedPool(b, m, seqs)                  // timed traffic: about one event per sequence
	pp := startPipeline(b, pipeline.DefaultConfig()) // stopped below: a deferred stop would keep it reachable
	// Warm: stream 6 events per sequence through, decoded on the fly, so
	// that (nearly) every sequence is live and every image has a model.
	g, err := NewGenerator(m)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]scorer.Event, 0, 4096)
	t0 := time.Now()
	var buf []byte
	for i := 0; i < 6*seqs; i++ {
		buf, _ = g.Append(buf[:0], t0.Add(time.Duration(i)*20*time.Microsecond))
		ev, err := scorer.DecodeJSON(buf)
		if err != nil {
			b.Fatal(err)
		}
		chunk = append(chunk, ev)
		if len(chunk) == cap(chunk) {
			pp.feed(b, chunk, 64)
			chunk = make([]scorer.Event, 0, 4096)
		}
	}
	pp.feed(b, chunk, 64)
	pp.drain()
	warm := heapAlloc()
	live := pp.gauge("falco_scorer_sequences_live")
	b.ReportAllocs()
	b.ResetTimer()
	for fed := 0; fed < b.N; {
		n := min(len(pool), b.N-fed)
		pp.feed(b, pool[:n], 64)
		fed += n
	}
	pp.drain()
	b.StopTimer()
	// The pipeline's state is what the heap loses when it is gone.
	pp.stop()
	pp = nil
	state := int64(warm) - int64(heapAlloc())
	runtime.KeepAlive(pool) // counted in neither
	b.Logf("scale: %.0f live sequences, %d images: pipeline state %.0f MiB on the heap (%.0f B per live sequence, image models included)",
		live, m.Images, float64(state)/mib, float64(state)/max(live, 1))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(state)/mib, "state-MiB")
	b.ReportMetric(live, "sequences")
}
