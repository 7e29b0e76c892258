package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/source"
)

// The end-to-end benchmarks run only under -bench (they take a minute or
// more each). Run them one at a time per process, with -benchtime 1x and
// -count for repeats:
//
//	go test -run '^$' -bench E2E -benchtime 1x -count 3 -timeout 30m ./cmd/falco-loadgen

var (
	e2eDuration   = flag.Duration("e2e.duration", 10*time.Second, "measured load duration of each end-to-end phase")
	e2eProfile    = flag.String("e2e.cpuprofile", "", "write the service's CPU profile of BenchmarkE2E to this file")
	replayEvents  = flag.Int("e2e.replay-events", 500_000, "events in the capture of BenchmarkReplay")
	scaleImages   = flag.Int("e2e.scale-images", 10_000, "images in BenchmarkScale")
	scaleProcs    = flag.Int("e2e.scale-procs", 10, "live processes (sequences) per image in BenchmarkScale")
	scalePerProcs = flag.Int("e2e.scale-events", 8, "events per sequence in BenchmarkScale")
	profileExtra  = flag.String("e2e.extra-config", "", "YAML appended to the service's configuration in BenchmarkE2EProfile (experiments)")
	profileKafka  = flag.String("e2e.kafka-config", "", "YAML lines (indented 4 spaces) added to sinks.kafka in BenchmarkE2EProfile (experiments)")
)

var built bins

func TestMain(m *testing.M) {
	code := m.Run()
	built.cleanup()
	os.Exit(code)
}

func loadOpts(url string) Options {
	o := DefaultOptions(url)
	o.Duration = *e2eDuration
	return o
}

func warm(b *testing.B, url string, d time.Duration) {
	b.Helper()
	o := loadOpts(url)
	o.Duration = d
	if _, err := Run(context.Background(), o); err != nil {
		b.Fatal(err)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const mib = 1 << 20

// BenchmarkE2E is the end-to-end benchmark of issue 8, in one run:
//
//  1. a no-op HTTP receiver (child process) under the load generator;
//  2. falco-scorer (child process: HTTP ingest, durable Badger journal,
//     scoring, learning, outbox, Kafka sink) against an in-process
//     Kafka-protocol broker, under the same load: accepted events/s,
//     records read back from the broker/s, event→broker latency, CPU and
//     RSS of the service, and the ratio to the no-op receiver;
//  3. the same service at half the measured rate: latencies;
//  4. NDJSON batches (4 connections × 100 events): events/s;
//  5. overload (128 connections × 50-event batches): what is shed, and
//     whether the service's RSS stays flat.
func BenchmarkE2E(b *testing.B) {
	scorerBin, loadgenBin := built.get(b)
	ctx := context.Background()
	d := *e2eDuration

	// 1. No-op receiver.
	noop, noopURL := startNoop(b, loadgenBin)
	warm(b, noopURL, time.Second)
	n0, _ := readProc(noop.pid())
	noopSelf0 := selfCPU()
	base, err := Run(ctx, loadOpts(noopURL))
	if err != nil {
		b.Fatal(err)
	}
	noopSelf1 := selfCPU()
	n1, _ := readProc(noop.pid())
	if err := noop.stop(10 * time.Second); err != nil {
		b.Fatalf("noop server: %v", err)
	}
	b.Logf("no-op receiver: %.0f req/s, p50 %s p99 %s, cpu %.2fs (%.1f µs/request); bench process (load generator) %.1f µs/request; status %v",
		base.AcceptedPerSec(), base.Percentile(0.5), base.Percentile(0.99), (n1.cpu - n0.cpu).Seconds(),
		float64((n1.cpu-n0.cpu).Microseconds())/float64(base.Accepted), float64((noopSelf1-noopSelf0).Microseconds())/float64(base.Accepted), base.Status)

	// 2. The service, full speed.
	const topic = "falco-scorer.alerts"
	broker := newBroker(b, topic)
	brokers := broker.ListenAddrs()
	svc := startService(b, scorerBin, serviceConfig{brokers: brokers, topic: topic, cpuProfile: *e2eProfile})
	cons := consume(b, brokers, topic)
	warm(b, svc.url, 2*time.Second)

	metricsURL := strings.TrimSuffix(svc.url, "/") + "/metrics"
	m0 := scrape(metricsURL)
	p0, _ := readProc(svc.pid())
	self0 := selfCPU()
	t0 := time.Now()
	full, err := Run(ctx, loadOpts(svc.url))
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	self1 := selfCPU()
	p1, _ := readProc(svc.pid())
	m1 := scrape(metricsURL)
	b.Logf("service journal: %s", journalStats(m0, m1))
	seenInWindow := cons.seenBetween(t0, t1)
	got, waited := cons.waitFor(t0, t1, int(full.Alerts), 30*time.Second)
	_, _, lat := cons.window(t0, t1, time.Now())
	cpu := p1.cpu - p0.cpu
	ratio := full.AcceptedPerSec() / base.AcceptedPerSec()
	b.Logf("service: %.0f events/s accepted (%.2f × no-op), status %v, errors %d; http p50 %s p99 %s",
		full.AcceptedPerSec(), ratio, full.Status, full.Errors, full.Percentile(0.5), full.Percentile(0.99))
	b.Logf("service: broker records read during the window %.0f/s; alerts accepted %d, on the broker %d (%.1f s after the window); event→broker p50 %s p99 %s",
		float64(seenInWindow)/t1.Sub(t0).Seconds(), full.Alerts, got, waited.Seconds(), percentile(lat, 0.5), percentile(lat, 0.99))
	b.Logf("service: cpu %.2fs (%.1f µs/event), rss %.0f MiB (anonymous %.0f MiB, peak so far %.0f MiB); bench process (loadgen, broker, consumer) cpu %.2fs (%.1f µs/event)",
		cpu.Seconds(), float64(cpu.Microseconds())/float64(full.Accepted), float64(p1.rss)/mib, float64(p1.anon)/mib, float64(p1.hwm)/mib,
		(self1 - self0).Seconds(), float64((self1-self0).Microseconds())/float64(full.Accepted))

	// 3. Half the measured rate.
	half := loadOpts(svc.url)
	half.Rate = full.AcceptedPerSec() / 2
	t2 := time.Now()
	hres, err := Run(ctx, half)
	if err != nil {
		b.Fatal(err)
	}
	t3 := time.Now()
	hgot, _ := cons.waitFor(t2, t3, int(hres.Alerts), 30*time.Second)
	_, _, hlat := cons.window(t2, t3, time.Now())
	b.Logf("half rate (%.0f/s): %.0f events/s accepted, status %v; http p50 %s p99 %s; alerts %d, on the broker %d; event→broker p50 %s p99 %s",
		half.Rate, hres.AcceptedPerSec(), hres.Status, hres.Percentile(0.5), hres.Percentile(0.99),
		hres.Alerts, hgot, percentile(hlat, 0.5), percentile(hlat, 0.99))

	// 4. NDJSON batches.
	nd := loadOpts(svc.url)
	nd.Connections, nd.Batch = 4, 100
	ndres, err := Run(ctx, nd)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("ndjson 4×100: %.0f events/s accepted, status %v, http p50 %s p99 %s",
		ndres.AcceptedPerSec(), ndres.Status, ndres.Percentile(0.5), ndres.Percentile(0.99))

	// 5. Overload.
	over := loadOpts(svc.url)
	over.Connections, over.Batch = 128, 50
	var rss []procStat
	stopSample := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSample:
				return
			case <-tk.C:
				if st, err := readProc(svc.pid()); err == nil {
					rss = append(rss, st)
				}
			}
		}
	}()
	ores, err := Run(ctx, over)
	close(stopSample)
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	rssOf := func(s procStat) int64 { return s.rss }
	anonOf := func(s procStat) int64 { return s.anon }
	firstHalf, secondHalf := maxOf(rss[:len(rss)/2], rssOf), maxOf(rss[len(rss)/2:], rssOf)
	anon1, anon2 := maxOf(rss[:len(rss)/2], anonOf), maxOf(rss[len(rss)/2:], anonOf)
	var shed int64
	for code, n := range ores.Status {
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			shed += n
		}
	}
	b.Logf("overload 128×50: %.0f events/s accepted, status %v, errors %d; rss max first half %.0f MiB, second half %.0f MiB (anonymous %.0f → %.0f MiB, rest is Badger's mmapped files)",
		ores.AcceptedPerSec(), ores.Status, ores.Errors, float64(firstHalf)/mib, float64(secondHalf)/mib, float64(anon1)/mib, float64(anon2)/mib)
	b.Logf("overload rss samples (MiB, total/anon every 1 s): %s", rssTrace(rss))
	if resp, err := http.Get(strings.TrimSuffix(svc.url, "/") + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("after overload: /readyz = %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	if err := svc.stop(60 * time.Second); err != nil {
		b.Errorf("service stop: %v", err)
	}
	b.Logf("service peak rss over the whole run: %.0f MiB", float64(svc.maxRSS())/mib)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(base.AcceptedPerSec(), "noop-req/s")
	b.ReportMetric(full.AcceptedPerSec(), "events/s")
	b.ReportMetric(ratio, "x-noop")
	b.ReportMetric(float64(seenInWindow)/t1.Sub(t0).Seconds(), "broker-rec/s")
	b.ReportMetric(100*float64(got)/float64(max(full.Alerts, 1)), "delivered-%")
	b.ReportMetric(ms(full.Percentile(0.99)), "http-p99-ms")
	b.ReportMetric(ms(percentile(lat, 0.5)), "broker-p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "broker-p99-ms")
	b.ReportMetric(ms(hres.Percentile(0.99)), "half-http-p99-ms")
	b.ReportMetric(ms(percentile(hlat, 0.5)), "half-broker-p50-ms")
	b.ReportMetric(ms(percentile(hlat, 0.99)), "half-broker-p99-ms")
	b.ReportMetric(cpu.Seconds()/d.Seconds(), "cpu-cores")
	b.ReportMetric(float64(svc.maxRSS())/mib, "peak-rss-MiB")
	b.ReportMetric(ndres.AcceptedPerSec(), "ndjson-events/s")
	b.ReportMetric(100*float64(shed)/float64(max(ores.Requests, 1)), "overload-shed-%")
	b.ReportMetric(float64(secondHalf-firstHalf)/mib, "overload-rss-growth-MiB")
}

func maxOf(xs []procStat, f func(procStat) int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, f(x))
	}
	return m
}

func rssTrace(xs []procStat) string {
	var parts []string
	for i := 0; i < len(xs); i += 10 {
		parts = append(parts, fmt.Sprintf("%d/%d", xs[i].rss/mib, xs[i].anon/mib))
	}
	return strings.Join(parts, " ")
}

// BenchmarkReplay times `falco-scorer replay FILE` end to end (start, load
// baselines, decode, journal, score, outbox, stdout sink to /dev/null,
// drain, close) on a generated capture of -e2e.replay-events events, and,
// in the same run just before it, the NDJSON decode loop alone over the same
// file (source.ReadNDJSON into a no-op Acceptor, in this process): the
// replay's rate is reported as a ratio to that loop's, since absolute rates
// move by tens of percent between runs on a shared machine.
func BenchmarkReplay(b *testing.B) {
	scorerBin, _ := built.get(b)
	dir := b.TempDir()
	capture := filepath.Join(dir, "capture.ndjson")
	writeFile(b, capture, DefaultMix(), *replayEvents)
	loop := decodeLoop(b, capture)
	st := runReplay(b, scorerBin, dir, capture, "")
	rate := float64(*replayEvents) / st.wall.Seconds()
	loopRate := float64(loop.events) / loop.wall.Seconds()
	// CPU per event as a ratio too: the loop decodes in parallel, so its
	// wall time follows the machine's other load more than the replay's.
	cpuRatio := st.cpu.Seconds() / float64(*replayEvents) / (loop.cpu.Seconds() / float64(max(loop.events, 1)))
	b.Logf("replay %d events: %s wall, %.0f events/s, cpu %.1fs, peak rss %.0f MiB; decode loop alone: %s wall, %.0f events/s, cpu %.1fs; replay = %.3f × the decode loop's rate, %.1f × its CPU per event",
		*replayEvents, st.wall.Round(time.Millisecond), rate, st.cpu.Seconds(), float64(st.maxRSS)/mib,
		loop.wall.Round(time.Millisecond), loopRate, loop.cpu.Seconds(), rate/loopRate, cpuRatio)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(loopRate, "decode-loop-events/s")
	b.ReportMetric(rate/loopRate, "x-decode-loop")
	b.ReportMetric(cpuRatio, "cpu-per-event-x-decode-loop")
	b.ReportMetric(st.cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(st.maxRSS)/mib, "peak-rss-MiB")
}

// loopStats is what the decode loop alone cost.
type loopStats struct {
	events int64
	wall   time.Duration
	cpu    time.Duration // this process's user+system time over the loop
}

// decodeLoop reads capture with source.ReadNDJSON into a no-op Acceptor:
// the input side of a replay without the journal, the pipeline, the
// outbox or the sink.
func decodeLoop(b *testing.B, capture string) loopStats {
	b.Helper()
	f, err := os.Open(capture)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var acc countAcceptor
	c0 := selfCPU()
	start := time.Now()
	st, err := source.ReadNDJSON(context.Background(), bufio.NewReaderSize(f, 1<<20), &acc, source.NDJSONOptions{})
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("ReadNDJSON = %v", err)
	}
	if n := acc.n.Load(); n != int64(*replayEvents) {
		b.Fatalf("decode loop accepted %d events (stats %+v), want %d", n, st, *replayEvents)
	}
	return loopStats{events: acc.n.Load(), wall: wall, cpu: selfCPU() - c0}
}

// countAcceptor counts what it is given and keeps nothing.
type countAcceptor struct{ n atomic.Int64 }

func (c *countAcceptor) Accept(_ context.Context, _ string, evs []scorer.Event) error {
	c.n.Add(int64(len(evs)))
	return nil
}

// BenchmarkScale replays a capture of -e2e.scale-images images with
// -e2e.scale-procs live processes each (10,000 × 10 = 100,000 sequences, all
// still open at the end), then restarts the service on the same data dir:
// peak RSS, replay events/s at that scale, and start-up time with that
// many stored baselines.
func BenchmarkScale(b *testing.B) {
	scorerBin, _ := built.get(b)
	dir := b.TempDir()
	capture := filepath.Join(dir, "capture.ndjson")
	// Processes exit now and then (a new one takes the slot), so that
	// sequences end and their events are learned: only learned counts are
	// stored, and the restart below must find every image's baseline.
	m := Mix{Images: *scaleImages, ContainersPerImage: 1, ProcsPerContainer: *scaleProcs, AlertRatio: 0.01, ExitRate: 0.05, Seed: 7}
	events := m.Images * m.ProcsPerContainer * *scalePerProcs
	writeFile(b, capture, m, events)
	data := filepath.Join(dir, "data")
	st := runReplay(b, scorerBin, dir, capture, data)
	b.Logf("scale replay: %d images, %d sequences, %d events: %s wall, %.0f events/s, cpu %.1fs, peak rss %.0f MiB",
		m.Images, m.Images*m.ProcsPerContainer, events, st.wall.Round(time.Millisecond), float64(events)/st.wall.Seconds(),
		st.cpu.Seconds(), float64(st.maxRSS)/mib)

	// Start-up with the stored baselines.
	listen := freePort(b)
	cfg := filepath.Join(dir, "serve.yaml")
	yaml := serviceConfig{logLevel: "info"}.yaml(listen, data)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	c := startChild(b, nil, scorerBin, "serve", "--config", cfg)
	waitHTTP(b, c, "http://"+listen+"/readyz", 120*time.Second)
	startup := time.Since(start)
	ps, _ := readProc(c.pid())
	if err := c.stop(60 * time.Second); err != nil {
		b.Errorf("serve stop: %v", err)
	}
	loaded := -1
	for _, line := range strings.Split(c.stderrText(), "\n") {
		if _, v, ok := strings.Cut(line, `"images":`); ok && strings.Contains(line, "pipeline ready") {
			loaded, _ = strconv.Atoi(strings.SplitN(v, ",", 2)[0])
		}
	}
	b.Logf("start-up with %d stored baselines (of %d images): %s to ready, rss %.0f MiB", loaded, m.Images, startup.Round(time.Millisecond), float64(ps.rss)/mib)
	if loaded < m.Images*9/10 {
		b.Errorf("start-up loaded %d baselines, want about %d", loaded, m.Images)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(events)/st.wall.Seconds(), "events/s")
	b.ReportMetric(float64(st.maxRSS)/mib, "peak-rss-MiB")
	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(float64(loaded), "baselines-loaded")
	b.ReportMetric(float64(ps.rss)/mib, "startup-rss-MiB")
}

func writeFile(b *testing.B, path string, m Mix, n int) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeCapture(f, m, n, time.Now().Add(-time.Duration(n)*20*time.Microsecond)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

type replayStats struct {
	wall, cpu time.Duration
	maxRSS    int64
}

// runReplay runs `falco-scorer replay` with the stdout sink on /dev/null
// and a durable journal in data (a fresh directory when empty).
func runReplay(b *testing.B, bin, dir, capture, data string) replayStats {
	b.Helper()
	if data == "" {
		data = filepath.Join(dir, "replay-data")
	}
	cfg := filepath.Join(dir, "replay.yaml")
	yaml := serviceConfig{stdout: true}.yaml("127.0.0.1:0", data)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	c := startChild(b, nil, bin, "replay", "--config", cfg, capture) // stdout: /dev/null
	<-c.done
	wall := time.Since(start)
	if !c.cmd.ProcessState.Success() {
		b.Fatalf("replay: %v: %s", c.cmd.ProcessState, tail(c.stderrText(), 2000))
	}
	b.Logf("%s", strings.TrimSpace(lastLine(c.stderrText())))
	ru := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return replayStats{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSS: c.maxRSS()}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// BenchmarkE2EProfile runs only phase 2 of BenchmarkE2E (the service at full
// speed, one event per request, Kafka sink) and writes the service's CPU
// profile to -e2e.cpuprofile; it is skipped without that flag. With
// -e2e.extra-config it runs a variant of the configuration (experiments).
func BenchmarkE2EProfile(b *testing.B) {
	if *e2eProfile == "" {
		b.Skip("set -e2e.cpuprofile FILE")
	}
	scorerBin, _ := built.get(b)
	const topic = "falco-scorer.alerts"
	broker := newBroker(b, topic)
	brokers := broker.ListenAddrs()
	svc := startService(b, scorerBin, serviceConfig{brokers: brokers, topic: topic, cpuProfile: *e2eProfile, extra: *profileExtra, kafka: *profileKafka})
	cons := consume(b, brokers, topic)
	metricsURL := strings.TrimSuffix(svc.url, "/") + "/metrics"
	m0 := scrape(metricsURL)
	p0, _ := readProc(svc.pid())
	self0 := selfCPU()
	t0 := time.Now()
	res, err := Run(context.Background(), loadOpts(svc.url))
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	self1 := selfCPU()
	p1, _ := readProc(svc.pid())
	b.Logf("service journal: %s", journalStats(m0, scrape(metricsURL)))
	got, _ := cons.waitFor(t0, t1, int(res.Alerts), 30*time.Second)
	_, _, lat := cons.window(t0, t1, time.Now())
	b.Logf("event→broker p50 %s p99 %s", percentile(lat, 0.5), percentile(lat, 0.99))
	if err := svc.stop(60 * time.Second); err != nil {
		b.Errorf("service stop: %v", err)
	}
	cpu := p1.cpu - p0.cpu
	b.Logf("profiled: %.0f events/s, status %v, p50 %s p99 %s, alerts %d on the broker %d, cpu %.2fs (%.1f µs/event); bench process %.1f µs/event",
		res.AcceptedPerSec(), res.Status, res.Percentile(0.5), res.Percentile(0.99), res.Alerts, got,
		cpu.Seconds(), float64(cpu.Microseconds())/float64(res.Accepted), float64((self1-self0).Microseconds())/float64(res.Accepted))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(res.AcceptedPerSec(), "events/s")
}
