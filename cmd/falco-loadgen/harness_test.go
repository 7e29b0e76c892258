package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The harness: the falco-scorer and falco-loadgen binaries built once per
// test process, child processes with CPU and memory read from /proc, an
// in-process Kafka-protocol broker and a consumer that times every record.

// bins holds the binaries built once per test process.
type bins struct {
	once    sync.Once
	dir     string
	scorer  string
	loadgen string
	err     error
}

func (b *bins) get(tb testing.TB) (scorer, loadgen string) {
	tb.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "falco-bench-bin-")
		if b.err != nil {
			return
		}
		b.scorer = filepath.Join(b.dir, "falco-scorer")
		b.loadgen = filepath.Join(b.dir, "falco-loadgen")
		// falcobench compiles in the store's benchmark-only sync delay
		// (store/journal_benchsync.go), off unless its variable is set.
		for _, x := range [][2]string{
			{b.scorer, "github.com/falco-scorer/falco-scorer/cmd/falco-scorer"},
			{b.loadgen, "github.com/falco-scorer/falco-scorer/cmd/falco-loadgen"},
		} {
			out, err := exec.Command("go", "build", "-tags", "falcobench", "-o", x[0], x[1]).CombinedOutput()
			if err != nil {
				b.err = fmt.Errorf("go build %s: %w\n%s", x[1], err, out)
				return
			}
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.scorer, b.loadgen
}

func (b *bins) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// child is a process under measurement.
type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	mu     sync.Mutex
	hwm    atomic.Int64 // the child's VmHWM, sampled every 20 ms
}

func startChild(tb testing.TB, stdout *bytes.Buffer, name string, args ...string) *child {
	tb.Helper()
	return startChildEnv(tb, nil, stdout, name, args...)
}

// startChildEnv is startChild with env added to the benchmark's environment.
func startChildEnv(tb testing.TB, env []string, stdout *bytes.Buffer, name string, args ...string) *child {
	tb.Helper()
	c := &child{cmd: exec.Command(name, args...), stderr: new(bytes.Buffer), done: make(chan struct{})}
	if len(env) > 0 {
		c.cmd.Env = append(os.Environ(), env...)
	}
	if stdout != nil {
		c.cmd.Stdout = stdout
	}
	c.cmd.Stderr = lockedWriter{&c.mu, c.stderr}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(exited) }()
	go func() {
		// The peak resident set of the child's own address space. Not
		// rusage's ru_maxrss: exec keeps the parent's high-water mark there
		// (os/exec forks with CLONE_VM), so a child of a large benchmark
		// process reported the benchmark's RSS, not its own.
		defer close(c.done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			if st, err := readProc(c.cmd.Process.Pid); err == nil {
				c.hwm.Store(max(c.hwm.Load(), st.hwm))
			}
			select {
			case <-exited:
				return
			case <-tk.C:
			}
		}
	}()
	tb.Cleanup(func() { c.kill() })
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// stop sends SIGTERM and waits up to d for a clean exit.
func (c *child) stop(d time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if !c.cmd.ProcessState.Success() {
			return fmt.Errorf("exit %v: %s", c.cmd.ProcessState, tail(c.stderrText(), 2000))
		}
		return nil
	case <-time.After(d):
		c.kill()
		return fmt.Errorf("no exit within %s after SIGTERM", d)
	}
}

func (c *child) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// maxRSS is the peak resident set of the child, in bytes, as last sampled
// (VmHWM only grows, so the last sample before exit is the peak up to the
// final 20 ms).
func (c *child) maxRSS() int64 { return c.hwm.Load() }

// procStat is a snapshot of a live process.
type procStat struct {
	cpu      time.Duration // user + system
	rss, hwm int64         // current and peak resident set, bytes
	anon     int64         // resident anonymous memory (heap, stacks), bytes
	file     int64         // resident file-backed pages (Badger's mmapped files), bytes
}

// clkTck is USER_HZ, 100 on Linux for every architecture Go supports.
const clkTck = 100

func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stt) * time.Second / clkTck
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(s), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.rss = kb << 10
		case "VmHWM":
			st.hwm = kb << 10
		case "RssAnon":
			st.anon = kb << 10
		case "RssFile":
			st.file = kb << 10
		}
	}
	return st, nil
}

// freePort returns a loopback address that was free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitHTTP polls url until it answers 200 or d passes.
func waitHTTP(tb testing.TB, c *child, url string, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			tb.Fatalf("child exited before ready: %s", tail(c.stderrText(), 2000))
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("%s not ready within %s: %s", url, d, tail(c.stderrText(), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// service is a falco-scorer child serving HTTP ingest.
type service struct {
	*child
	url     string // ingest URL
	dataDir string
}

// serviceConfig is what a benchmark varies in the child's configuration.
type serviceConfig struct {
	brokers    []string // Kafka sink enabled when set
	topic      string
	stdout     bool
	cpuProfile string
	logLevel   string   // default warn
	kafka      string   // more YAML lines for sinks.kafka, indented by 4 spaces
	extra      string   // more YAML, appended (top-level sections other than sinks)
	env        []string // added to the child's environment
	dataRoot   string   // parent of the data directory (default: a temporary directory)
}

func (s serviceConfig) yaml(listen, dataDir string) string {
	var b strings.Builder
	level := s.logLevel
	if level == "" {
		level = "warn"
	}
	fmt.Fprintf(&b, "log:\n  level: %s\ndata_dir: %s\ninputs:\n  http:\n    listen: %s\n", level, dataDir, listen)
	fmt.Fprintf(&b, "sinks:\n  stdout:\n    enabled: %t\n", s.stdout)
	if len(s.brokers) > 0 {
		fmt.Fprintf(&b, "  kafka:\n    enabled: true\n    brokers: [%s]\n    topic: %s\n", strings.Join(s.brokers, ", "), s.topic)
		b.WriteString(s.kafka)
	}
	b.WriteString(s.extra)
	return b.String()
}

// startService runs `falco-scorer serve` on a free loopback port with its
// data in a fresh temporary directory, and waits until it is ready.
func startService(tb testing.TB, bin string, sc serviceConfig) *service {
	tb.Helper()
	dir := tb.TempDir()
	if sc.dataRoot != "" {
		var err error
		if dir, err = os.MkdirTemp(sc.dataRoot, "falco-bench-"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(dir) })
	}
	listen := freePort(tb)
	cfgPath := filepath.Join(dir, "config.yaml")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(cfgPath, []byte(sc.yaml(listen, data)), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{"serve", "--config", cfgPath}
	if sc.cpuProfile != "" {
		args = append(args, "--cpuprofile", sc.cpuProfile)
	}
	c := startChildEnv(tb, sc.env, nil, bin, args...)
	base := "http://" + listen
	waitHTTP(tb, c, base+"/readyz", 60*time.Second)
	return &service{child: c, url: base + "/", dataDir: data}
}

// startNoop runs `falco-loadgen -serve-noop` and returns it with its URL
// (the address is printed on its standard output).
func startNoop(tb testing.TB, loadgen string) (*child, string) {
	tb.Helper()
	cmd := exec.Command(loadgen, "-serve-noop", "127.0.0.1:0")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: new(bytes.Buffer), done: make(chan struct{})}
	cmd.Stderr = lockedWriter{&c.mu, c.stderr}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(pipe).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		tb.Fatalf("noop server: %v", err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	tb.Cleanup(c.kill)
	return c, "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening ")) + "/"
}

// broker is an in-process Kafka-protocol broker.
func newBroker(tb testing.TB, topics ...string) *kfake.Cluster {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topics...))
	if err != nil {
		tb.Fatalf("kfake.NewCluster() = %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// delivery is one record seen by the consumer: when the event was sent
// (evt.time inside the alert's "falco" object) and when it was read.
type delivery struct{ sent, seen int64 }

// consumer counts and times the records of one topic.
type consumer struct {
	mu   sync.Mutex
	recs []delivery
	bad  int
	stop context.CancelFunc
	done chan struct{}
}

func consume(tb testing.TB, brokers []string, topic string) *consumer {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("kgo.NewClient() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{stop: cancel, done: make(chan struct{}), recs: make([]delivery, 0, 1<<16)}
	go func() {
		defer close(c.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now().UnixNano()
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				sent, ok := evtTime(r.Value)
				if !ok {
					c.bad++
					return
				}
				c.recs = append(c.recs, delivery{sent: sent, seen: now})
			})
			c.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { cancel(); <-c.done })
	return c
}

// evtTime finds output_fields["evt.time"] of the forwarded Falco event.
// The alert JSON holds it once, in "falco", as the loadgen wrote it.
func evtTime(v []byte) (int64, bool) {
	const key = `"evt.time":`
	i := bytes.Index(v, []byte(key))
	if i < 0 {
		return 0, false
	}
	v = v[i+len(key):]
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(v[:j]), 10, 64)
	return n, err == nil
}

// window returns the records of events sent in [from, to): how many, how
// many were read by deadline, and the sorted send→read latencies.
func (c *consumer) window(from, to, deadline time.Time) (all, byDeadline int, lat []time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, t, d := from.UnixNano(), to.UnixNano(), deadline.UnixNano()
	for _, r := range c.recs {
		if r.sent < f || r.sent >= t {
			continue
		}
		all++
		if r.seen <= d {
			byDeadline++
		}
		lat = append(lat, time.Duration(r.seen-r.sent))
	}
	slices.Sort(lat)
	return all, byDeadline, lat
}

// seenBetween counts the records read in [from, to), whenever sent.
func (c *consumer) seenBetween(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, t := from.UnixNano(), to.UnixNano()
	n := 0
	for _, r := range c.recs {
		if r.seen >= f && r.seen < t {
			n++
		}
	}
	return n
}

// waitFor polls until the consumer holds want records sent in [from, to),
// or until d passes; it returns how long it waited.
func (c *consumer) waitFor(from, to time.Time, want int, d time.Duration) (int, time.Duration) {
	start := time.Now()
	for {
		n, _, _ := c.window(from, to, time.Now())
		if n >= want || time.Since(start) > d {
			return n, time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape reads the service's Prometheus text exposition into name → value
// (labelled series are summed under their bare name).
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out
}

// journalStats summarizes group commits between two scrapes.
func journalStats(before, after map[string]float64) string {
	d := func(k string) float64 { return after[k] - before[k] }
	commits := d("falco_scorer_store_journal_commits_total")
	if commits == 0 {
		return "no journal commits"
	}
	return fmt.Sprintf("%.0f group commits, %.1f events each, %.2f ms each (write+sync); outbox commits %.0f, %.2f ms each",
		commits, d("falco_scorer_store_journal_commit_events_sum")/commits,
		1000*d("falco_scorer_store_journal_commit_seconds_sum")/commits,
		d("falco_scorer_commit_seconds_count"),
		1000*d("falco_scorer_commit_seconds_sum")/max(d("falco_scorer_commit_seconds_count"), 1))
}
