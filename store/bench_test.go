package store

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// sampleEvent is a typical Falco http_output body (about 700 bytes).
var sampleEvent = []byte(`{"hostname":"node-1","output":"12:00:00.000000000: Notice A shell was spawned in a container with an attached terminal (evt_type=execve user=root user_uid=0 process=bash proc_exepath=/bin/bash parent=runc command=bash terminal=34816 exe_flags=EXE_WRITABLE container_id=4e5c1a2b3c4d container_image=docker.io/library/nginx container_image_tag=1.27 k8s_pod_name=web-7d9f k8s_ns_name=shop)","priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["T1059","container","maturity_stable","mitre_execution","shell"],"time":"2026-11-24T12:00:00.000000000Z","output_fields":{"container.id":"4e5c1a2b3c4d","container.image.repository":"docker.io/library/nginx","container.image.tag":"1.27","evt.type":"execve","evt.time":1795953600000000000,"k8s.ns.name":"shop","k8s.pod.name":"web-7d9f","proc.cmdline":"bash","proc.name":"bash","proc.pid":4242,"user.uid":0}}`)

// appendConcurrently appends n single-event requests from workers
// goroutines and returns events per second.
func appendConcurrently(b *testing.B, workers, n int, appendOne func() error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := appendOne(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkJournalAppend measures the journal with 64 concurrent appenders
// (one event each, as HTTP handlers do) on one on-disk Badger: group commit
// with one sync per group (the real path), the same path without the sync,
// and, for scale, one transaction and one sync per event.
func BenchmarkJournalAppend(b *testing.B) {
	const workers = 64
	d := openAt(b, b.TempDir())
	ctx := context.Background()
	appendOne := func() error {
		_, err := d.Append(ctx, [][]byte{sampleEvent})
		return err
	}
	n := max(b.N, 2000)
	b.ResetTimer()
	synced := appendConcurrently(b, workers, n, appendOne)
	b.StopTimer()
	d.noSync = true
	unsynced := appendConcurrently(b, workers, n, appendOne)
	d.noSync = false
	var seq atomic.Uint64
	seq.Store(1 << 40)
	perEvent := appendConcurrently(b, workers, min(n, 3000), func() error {
		if err := d.bdb.Update(func(txn *badger.Txn) error {
			return txn.Set(journalKey(seq.Add(1)), sampleEvent)
		}); err != nil {
			return err
		}
		return d.bdb.Sync()
	})
	b.ReportMetric(synced, "events/s")
	b.ReportMetric(unsynced, "nosync-events/s")
	b.ReportMetric(synced/unsynced, "sync/nosync")
	b.ReportMetric(perEvent, "sync-per-event-events/s")
	b.ReportMetric(0, "ns/op")
}

func deltasFor(images int, bucket time.Time, rng *rand.Rand, countsBytes int) []scorer.BaselineDelta {
	out := make([]scorer.BaselineDelta, images)
	for i := range out {
		counts := make([]byte, countsBytes)
		for j := range counts {
			counts[j] = byte(rng.Uint32())
		}
		out[i] = scorer.BaselineDelta{
			Image:  fmt.Sprintf("registry.example.com/team-%d/service-%d:1.%d.0", i%50, i, i%7),
			Bucket: bucket, Counts: counts, Meta: counts[:min(64, len(counts))],
		}
	}
	return out
}

// BenchmarkPutDeltas10kImages measures one flush of 10,000 images' deltas
// (256-byte counts blob and 64-byte meta each).
func BenchmarkPutDeltas10kImages(b *testing.B) {
	d := openAt(b, b.TempDir())
	rng := rand.New(rand.NewPCG(1, 2))
	deltas := deltasFor(10000, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), rng, 256)
	b.ResetTimer()
	for b.Loop() {
		if err := d.PutDeltas(deltas); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenLoad10kBaselines stores 10,000 images with 24 hourly blobs
// of 256 random (incompressible) bytes each, closes the store, then measures
// Open + LoadBaselines over everything (target: under 2 s) and reports the
// bytes allocated on disk per baseline.
func BenchmarkOpenLoad10kBaselines(b *testing.B) {
	const images, hours = 10000, 24
	dir := b.TempDir()
	d := openAt(b, dir)
	rng := rand.New(rand.NewPCG(3, 4))
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for h := range hours {
		if err := d.PutDeltas(deltasFor(images, t0.Add(time.Duration(h)*time.Hour), rng, 256)); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	perBaseline := float64(diskUsage(b, dir)) / images
	b.ResetTimer()
	for b.Loop() {
		d, err := Open(testConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		n, blobs := 0, 0
		err = d.LoadBaselines(time.Time{}, func(_ string, _ []byte, bk []scorer.BaselineBucket) error {
			n++
			blobs += len(bk)
			return nil
		})
		if err != nil || n != images || blobs != images*hours {
			b.Fatalf("LoadBaselines = %d images, %d blobs, %v", n, blobs, err)
		}
		b.StopTimer()
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(perBaseline, "disk-bytes/baseline")
}

// diskUsage sums the blocks allocated to the files in dir (Badger
// preallocates sparse files, so apparent sizes would overstate it).
func diskUsage(tb testing.TB, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}
