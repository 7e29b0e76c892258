package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	durPhase  = flag.Duration("dur.phase", 5*time.Second, "duration of one measured phase of BenchmarkDurability")
	durRounds = flag.Int("dur.rounds", 3, "interleaved rounds of BenchmarkDurability (medians are taken over them)")
	durSteady = flag.Duration("dur.steady", 10*time.Second, "duration of BenchmarkDurability's steady 1,000 events/s phase")
	durDir    = flag.String("dur.dir", "", "where BenchmarkDurability puts the services' data (default: a temporary directory); a file system of its own (a loop device) makes the block device's counters the services' alone")
	durModesF = flag.String("dur.modes", "default,strict,default-sync2ms,strict-sync2ms", "comma-separated modes BenchmarkDurability runs, of: "+durModeNames())
	durMark   = flag.String("dur.mark", "", "a file BenchmarkDurability writes a line to at the start and end of every phase (for example /sys/kernel/tracing/trace_marker, to split a kernel trace of the writes per file by phase)")
)

// markPhase writes line to the -dur.mark file, if any. Errors are ignored:
// the marks are a diagnostic aid, not part of the measurement.
func markPhase(line string) {
	if *durMark == "" {
		return
	}
	if f, err := os.OpenFile(*durMark, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		_, _ = f.WriteString(line + "\n")
		_ = f.Close()
	}
}

// durMode is one configuration of the service in BenchmarkDurability.
type durMode struct {
	name      string
	yaml      string        // store section
	delay     time.Duration // added to every journal sync (benchmark-only hook)
	rawOutbox bool          // outbox payloads stored uncompressed (benchmark-only hook)
}

// allDurModes are the modes -dur.modes chooses from. The raw-outbox ones
// store alert payloads uncompressed, as before store format 3, so that the
// compression's cost and saving are measured in the same run.
var allDurModes = []durMode{
	{name: "default"},
	{name: "strict", yaml: "store:\n  journal_sync_interval: 0s\n"},
	{name: "default-sync2ms", delay: 2 * time.Millisecond},
	{name: "strict-sync2ms", yaml: "store:\n  journal_sync_interval: 0s\n", delay: 2 * time.Millisecond},
	{name: "default-raw-outbox", rawOutbox: true},
	{name: "default-sync2ms-raw-outbox", delay: 2 * time.Millisecond, rawOutbox: true},
}

func durModeNames() string {
	var names []string
	for _, m := range allDurModes {
		names = append(names, m.name)
	}
	return strings.Join(names, ", ")
}

// selectedDurModes returns the modes named by -dur.modes, in its order.
func selectedDurModes(tb testing.TB) []durMode {
	tb.Helper()
	var out []durMode
	for _, name := range strings.Split(*durModesF, ",") {
		i := slices.IndexFunc(allDurModes, func(m durMode) bool { return m.name == strings.TrimSpace(name) })
		if i < 0 {
			tb.Fatalf("-dur.modes: unknown mode %q (modes: %s)", name, durModeNames())
		}
		out = append(out, allDurModes[i])
	}
	return out
}

// BenchmarkDurability measures what one Falco gets (1 connection: Falco's
// http_output posts one event and waits for the answer) and what 16
// connections get, against the no-op receiver measured in the same run, for
// the default durability mode (acknowledged once written, journal synced
// every 100 ms) and the strict one (synced before every acknowledgement),
// each also with 2 ms added to every journal sync (as on network block
// storage; a hook compiled in with -tags falcobench only). Every service has
// the Kafka sink on, against an in-process broker.
//
// The machine is small and shared, so nothing is compared across runs: the
// targets are run in interleaved rounds (no-op, then each mode, the order
// rotated every round), each phase's ratio is taken to the no-op phase of
// the same round and connection count, and the reported figures are medians
// over the rounds. Per phase it also reads the service's CPU (/proc/PID/stat)
// and its disk budget: the block device's sectors and write requests (the
// phase bracketed by syncfs, so what the phase dirtied is counted in it; the
// device is shared, so an idle window of the same length is measured for
// comparison), the service's /proc/PID/io write_bytes, and the journal's
// sync count (falco_scorer_store_journal_syncs_total). Last, each mode runs
// at a steady 1,000 events/s on one connection, the disk budget
// point.
func BenchmarkDurability(b *testing.B) {
	durModes := selectedDurModes(b)
	scorerBin, loadgenBin := built.get(b)
	ctx := context.Background()
	noop, noopURL := startNoop(b, loadgenBin)
	topics := make([]string, len(durModes))
	for i, m := range durModes {
		topics[i] = "alerts-" + m.name
	}
	broker := newBroker(b, topics...)
	svcs := make([]*service, len(durModes))
	for i, m := range durModes {
		var env []string
		if m.delay > 0 {
			env = append(env, "FALCO_SCORER_BENCH_SYNC_DELAY="+m.delay.String())
		}
		if m.rawOutbox {
			env = append(env, "FALCO_SCORER_BENCH_RAW_OUTBOX=1")
		}
		svcs[i] = startService(b, scorerBin, serviceConfig{brokers: broker.ListenAddrs(), topic: topics[i], extra: m.yaml, env: env, dataRoot: *durDir})
	}
	disk, err := blockDevice(svcs[0].dataDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("block device of the data directories: %s", disk)
	run := func(url string, c int, d time.Duration, rate float64) Result {
		o := loadOpts(url)
		o.Connections, o.Duration, o.Rate = c, d, rate
		res, err := Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	warm(b, noopURL, time.Second)
	for _, s := range svcs {
		warm(b, s.url, 2*time.Second)
	}

	type phase struct {
		res    Result
		cpu    time.Duration
		disk   diskDelta
		target string
	}
	// measure runs one phase against pid (the no-op server or a service).
	measure := func(target, url string, pid int, metricsURL, dataDir string, c int, d time.Duration, rate float64) phase {
		syncFS(b, dataDir)
		markPhase(fmt.Sprintf("falco-bench start %s c%d rate%.0f", target, c, rate))
		d0 := readDisk(disk, pid, metricsURL)
		p0, _ := readProc(pid)
		res := run(url, c, d, rate)
		p1, _ := readProc(pid)
		syncFS(b, dataDir)
		d1 := readDisk(disk, pid, metricsURL)
		markPhase(fmt.Sprintf("falco-bench end %s c%d rate%.0f", target, c, rate))
		return phase{res: res, cpu: p1.cpu - p0.cpu, disk: d1.sub(d0), target: target}
	}
	conns := []int{1, 16}
	// ratio[mode][c] over rounds; cpuRatio at 16; disk per event.
	type key struct {
		mode string
		c    int
	}
	ratios, rates, cpuPer, devPer, iosPer, syncsPer, procPer := map[key][]float64{}, map[key][]float64{}, map[key][]float64{}, map[key][]float64{}, map[key][]float64{}, map[key][]float64{}, map[key][]float64{}
	cpuRatio := map[string][]float64{}
	noopDir := svcs[0].dataDir // syncfs on the services' file system around no-op phases too
	for round := range *durRounds {
		for _, c := range conns {
			base := measure("noop", noopURL, noop.pid(), "", noopDir, c, *durPhase, 0)
			noopCPU := perEvent(base.cpu, base.res.Accepted)
			k0 := key{"noop", c}
			rates[k0] = append(rates[k0], base.res.AcceptedPerSec())
			cpuPer[k0] = append(cpuPer[k0], noopCPU)
			b.Logf("round %d, %d conn: no-op %.0f req/s, p50 %s, %.1f µs CPU/request", round, c, base.res.AcceptedPerSec(), base.res.Percentile(0.5), noopCPU)
			for n := range durModes {
				i := (n + round) % len(durModes) // rotate the order every round
				m, s := durModes[i], svcs[i]
				ph := measure(m.name, s.url, s.pid(), strings.TrimSuffix(s.url, "/")+"/metrics", s.dataDir, c, *durPhase, 0)
				k := key{m.name, c}
				ev := float64(max(ph.res.Accepted, 1))
				ratio := ph.res.AcceptedPerSec() / base.res.AcceptedPerSec()
				svcCPU := perEvent(ph.cpu, ph.res.Accepted)
				ratios[k] = append(ratios[k], ratio)
				rates[k] = append(rates[k], ph.res.AcceptedPerSec())
				cpuPer[k] = append(cpuPer[k], svcCPU)
				devPer[k] = append(devPer[k], float64(ph.disk.sectors*512)/ev)
				iosPer[k] = append(iosPer[k], float64(ph.disk.writeIOs)/ev)
				syncsPer[k] = append(syncsPer[k], ph.disk.syncs/ev)
				procPer[k] = append(procPer[k], float64(ph.disk.procWrite)/ev)
				if c == 16 {
					cpuRatio[m.name] = append(cpuRatio[m.name], svcCPU/noopCPU)
				}
				b.Logf("round %d, %d conn: %-15s %6.0f events/s (%.2f × no-op), status %v, p50 %s p99 %s; %.1f µs CPU/event; disk per event: %.0f B device (%.2f write requests), %.3f syncs, %.0f B /proc write_bytes; %.0f B received per event",
					round, c, m.name, ph.res.AcceptedPerSec(), ratio, ph.res.Status, ph.res.Percentile(0.5), ph.res.Percentile(0.99), svcCPU,
					float64(ph.disk.sectors*512)/ev, float64(ph.disk.writeIOs)/ev, ph.disk.syncs/ev, float64(ph.disk.procWrite)/ev, float64(ph.res.AcceptedBytes)/ev)
			}
		}
	}

	// Idle window: what the shared device writes without our load.
	syncFS(b, noopDir)
	i0 := readDisk(disk, noop.pid(), "")
	time.Sleep(*durSteady)
	syncFS(b, noopDir)
	idle := readDisk(disk, noop.pid(), "").sub(i0)
	b.Logf("idle %s: device %d KiB in %d write requests (other processes on the shared disk)", *durSteady, idle.sectors/2, idle.writeIOs)

	// Steady 1,000 events/s on one connection.
	for i, m := range durModes {
		s := svcs[i]
		ph := measure(m.name, s.url, s.pid(), strings.TrimSuffix(s.url, "/")+"/metrics", s.dataDir, 1, *durSteady, 1000)
		secs := ph.res.Elapsed.Seconds()
		amp := float64(ph.disk.sectors*512) / float64(max(ph.res.AcceptedBytes, 1))
		b.Logf("steady 1000/s %-15s: %.0f events/s, status %v, p50 %s p99 %s; received %.0f KiB/s; device %.0f KiB/s (write amplification %.2f; idle window %.0f KiB/s), %.0f write requests/s; %.1f syncs/s (journal and Badger); /proc write_bytes %.0f KiB/s",
			m.name, ph.res.AcceptedPerSec(), ph.res.Status, ph.res.Percentile(0.5), ph.res.Percentile(0.99), float64(ph.res.AcceptedBytes)/1024/secs,
			float64(ph.disk.sectors)/2/secs, amp, float64(idle.sectors)/2/durSteady.Seconds(), float64(ph.disk.writeIOs)/secs, ph.disk.syncs/secs, float64(ph.disk.procWrite)/1024/secs)
		b.ReportMetric(amp, m.name+"-steady1k-write-amp")
		b.ReportMetric(ph.disk.syncs/secs, m.name+"-steady1k-syncs/s")
	}
	for _, s := range svcs {
		if err := s.stop(60 * time.Second); err != nil {
			b.Errorf("service stop: %v", err)
		}
	}
	_ = noop.stop(10 * time.Second)

	b.ReportMetric(0, "ns/op")
	for _, c := range conns {
		b.ReportMetric(median(rates[key{"noop", c}]), fmt.Sprintf("noop-c%d-req/s", c))
		for _, m := range durModes {
			k := key{m.name, c}
			b.ReportMetric(median(ratios[k]), fmt.Sprintf("%s-c%d-x-noop", m.name, c))
			b.ReportMetric(median(rates[k]), fmt.Sprintf("%s-c%d-events/s", m.name, c))
			b.ReportMetric(median(devPer[k]), fmt.Sprintf("%s-c%d-device-B/event", m.name, c))
			b.ReportMetric(median(syncsPer[k]), fmt.Sprintf("%s-c%d-syncs/event", m.name, c))
			b.Logf("median over %d rounds, %d conn, %-15s: %.2f × no-op (%v), %.0f events/s, %.1f µs CPU/event, device %.0f B/event (%.2f write requests), %.3f syncs/event, /proc write_bytes %.0f B/event",
				*durRounds, c, m.name, median(ratios[k]), roundAll(ratios[k]), median(rates[k]), median(cpuPer[k]), median(devPer[k]), median(iosPer[k]), median(syncsPer[k]), median(procPer[k]))
		}
	}
	for _, m := range durModes {
		b.ReportMetric(median(cpuRatio[m.name]), m.name+"-c16-cpu-x-noop")
		b.Logf("CPU per event at 16 conn, %-15s: %.2f × the no-op server's per request (%v)", m.name, median(cpuRatio[m.name]), roundAll(cpuRatio[m.name]))
	}
}

func perEvent(d time.Duration, n int64) float64 {
	return float64(d.Microseconds()) / float64(max(n, 1))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(int(x*100+0.5)) / 100
	}
	return out
}

// diskDelta is what a phase cost the disk.
type diskDelta struct {
	sectors   int64   // 512-byte sectors the block device wrote
	writeIOs  int64   // write requests the block device completed
	procWrite int64   // the process's /proc/PID/io write_bytes
	syncs     float64 // the service's journal_syncs_total
}

func (a diskDelta) sub(b diskDelta) diskDelta {
	return diskDelta{a.sectors - b.sectors, a.writeIOs - b.writeIOs, a.procWrite - b.procWrite, a.syncs - b.syncs}
}

// blockDevice returns the /sys stat file of the block device holding dir.
func blockDevice(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	p := fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("block device of %s: %w", dir, err)
	}
	return p, nil
}

// readDisk reads the device's counters, the process's write_bytes and (when
// metricsURL is set) the service's sync count.
func readDisk(devStat string, pid int, metricsURL string) diskDelta {
	var d diskDelta
	if b, err := os.ReadFile(devStat); err == nil {
		// Fields: reads, merged, sectors, ms, writes, merged, sectors, ...
		if f := strings.Fields(string(b)); len(f) >= 7 {
			d.writeIOs, _ = strconv.ParseInt(f[4], 10, 64)
			d.sectors, _ = strconv.ParseInt(f[6], 10, 64)
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
				d.procWrite, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	if metricsURL != "" {
		d.syncs = scrape(metricsURL)["falco_scorer_store_journal_syncs_total"]
	}
	return d
}

// syncFS flushes the file system holding dir (syncfs), so that what a
// phase dirtied is written, and counted, within the phase.
func syncFS(tb testing.TB, dir string) {
	tb.Helper()
	f, err := os.Open(filepath.Clean(dir))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		tb.Fatal(err)
	}
}
