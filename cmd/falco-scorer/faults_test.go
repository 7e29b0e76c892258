package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/falcosecurity/client-go/pkg/api/schema"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/store"
)

// steady posts one Falco alert every interval until stop, and records the
// ids acknowledged and the answers.
type steady struct {
	mu    sync.Mutex
	acked map[string]bool
	codes map[int]int
	errs  int
}

func runSteady(url, image string, interval time.Duration, first int, stop <-chan struct{}) (*steady, func()) {
	s := &steady{acked: map[string]bool{}, codes: map[int]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for i := first; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			raw := falcoAlertJSON(i, image, "Warning")
			code, _, err := post(url, raw, false)
			s.mu.Lock()
			if err != nil {
				s.errs++
			} else {
				s.codes[code]++
				if code == http.StatusOK {
					s.acked[falcoID(raw)] = true
				}
			}
			s.mu.Unlock()
		}
	}()
	return s, func() { <-done }
}

// TestKafkaOutage stops the Kafka broker under a steady stream of alerts
// for kafkaOutage (5 s by default, 30 s with -tags soak), restarts it on the
// same port and data, and checks that every acknowledged alert is in the
// topic afterwards (duplicates allowed, with the same alert id).
func TestKafkaOutage(t *testing.T) {
	kdir := t.TempDir()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(kdir))
	if err != nil {
		t.Fatal(err)
	}
	broker := c1.ListenAddrs()[0]
	_, portText, _ := net.SplitHostPort(broker)
	port, _ := strconv.Atoi(portText)

	cfg := testConfig(t.TempDir())
	e2eSinks(t, &cfg, broker, nil, nil)
	cfg.Sinks.Kafka.CreateTopic = true
	cfg.Sinks.Kafka.Partitions = 1
	r := startService(t, cfg, "info")

	stop := make(chan struct{})
	s, wait := runSteady(r.url, "nginx:1.27", 10*time.Millisecond, 0, stop)
	time.Sleep(time.Second)
	c1.Close()
	downAt := time.Now()
	time.Sleep(kafkaOutage)
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(kdir), kfake.Ports(port))
	if err != nil {
		t.Fatalf("restart broker on port %d: %v", port, err)
	}
	defer c2.Close()
	down := time.Since(downAt)
	time.Sleep(time.Second)
	close(stop)
	wait()

	s.mu.Lock()
	acked := s.acked
	codes := s.codes
	s.mu.Unlock()
	recs := consumeUntil(t, broker, "alerts", 60*time.Second, func(recs []*kgo.Record) bool {
		return missingFrom(acked, kafkaIDs(recs)) == 0
	})
	got := kafkaIDs(recs)
	m := metrics(t, r.url)
	lost := missingFrom(acked, got)
	t.Logf("broker down %s under 100 alerts/s: accepted %d (answers %v), delivered %d distinct (%d records, %d duplicates), lost %d; falco_scorer_sink_retried_total{sink=kafka} %v",
		down.Round(100*time.Millisecond), len(acked), codes, len(got), len(recs), len(recs)-len(got), lost,
		sum(m, "falco_scorer_sink_retried_total", `sink="kafka"`))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged alerts never reached Kafka", lost, len(acked))
	}
	if codes[http.StatusOK] != len(acked) || len(acked) < 100 {
		t.Errorf("ingest answers during the outage = %v, want only 200 (Kafka must not back-pressure ingest)", codes)
	}
}

func kafkaIDs(recs []*kgo.Record) map[string]int {
	got := map[string]int{}
	for _, r := range recs {
		got[header(r, kafka.HeaderAlertID)]++
	}
	return got
}

// TestSlackRateLimitAndErrors has the Slack receiver answer 429 with
// Retry-After and 5xx in bursts, and checks every alert is posted once
// Slack recovers, that the gap between messages never falls below
// min_interval, and that Retry-After is honoured.
func TestSlackRateLimitAndErrors(t *testing.T) {
	t.Parallel() // mostly waiting out Retry-After; its bounds are lower bounds, which load cannot break
	fault := func(n int) (int, string) {
		switch {
		case n >= 3 && n < 6:
			return http.StatusTooManyRequests, "1"
		case n >= 10 && n < 14:
			return http.StatusServiceUnavailable, ""
		case n >= 18 && n < 20:
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	}
	slack := newReceiver(t, fault)
	cfg := testConfig(t.TempDir())
	cfg.Sinks.Slack.Enabled = true
	cfg.Sinks.Slack.Config.WebhookURL = secretURL(slack.URL + "/services/T/B/x")
	const minInterval = 100 * time.Millisecond
	cfg.Sinks.Slack.MinInterval = minInterval
	r := startService(t, cfg, "info")

	const n = 25
	want := map[string]bool{}
	for i := range n {
		raw := falcoAlertJSON(i, "nginx:1.27", "Error")
		postOK(t, r.url, raw, false)
		want[falcoID(raw)] = true
	}
	scorertest.WaitWithin(t, 60*time.Second, "every alert posted to Slack", func() bool {
		return len(idsIn(slack.Bodies(), want)) == n
	})
	arr := slack.Arrivals()
	got := idsIn(slack.Bodies(), want)
	minGap := time.Hour
	for i := 1; i < len(arr); i++ {
		gap := arr[i].Sub(arr[i-1])
		minGap = min(minGap, gap)
		if gap < minInterval-5*time.Millisecond {
			t.Errorf("gap between Slack requests %d and %d = %s, want ≥ min_interval %s", i-1, i, gap, minInterval)
		}
		if st, _ := fault(i - 1); st == http.StatusTooManyRequests && gap < time.Second-5*time.Millisecond {
			t.Errorf("request %d came %s after a 429 with Retry-After: 1, want ≥ 1s", i, gap)
		}
	}
	dupes := 0
	for _, c := range got {
		dupes += c - 1
	}
	t.Logf("Slack: %d alerts accepted, %d requests (3×429, 6×5xx), %d delivered, %d duplicates, 0 lost; smallest gap %s (min_interval %s)",
		n, len(arr), len(got), dupes, minGap.Round(time.Millisecond), minInterval)
}

// TestDiskFull mounts a small tmpfs as the data directory, fills it below
// store.min_free_bytes while events arrive, and checks: ingest answers 503
// (once the guard has read the free space again, within 100 ms) and never
// a 200, the service stays up (/healthz), the error is
// logged once, and ingest recovers when space is freed; every acknowledged
// alert is delivered.
func TestDiskFull(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs here (%v: %s): the min_free_bytes guard is covered by store tests only", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	cfg := testConfig(filepath.Join(mnt, "data"))
	const minFree = store.MinFreeFloor
	cfg.Store.MinFreeBytes = minFree
	r := startService(t, cfg, "info")

	acked := map[string]bool{}
	postOne := func(i int) int {
		raw := falcoAlertJSON(i, "nginx:1.27", "Warning")
		code, _, err := post(r.url, raw, false)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		if code == http.StatusOK {
			acked[falcoID(raw)] = true
		}
		return code
	}
	for i := range 20 {
		if c := postOne(i); c != http.StatusOK {
			t.Fatalf("before the disk fills: post = %d, want 200", c)
		}
	}

	// Fill the file system until less than min_free_bytes is left.
	filler := filepath.Join(mnt, "filler")
	free := statFree(t, mnt)
	if free <= minFree {
		t.Fatalf("tmpfs has only %d bytes free after start", free)
	}
	fillTo(t, filler, int64(free)-minFree/2)
	// The guard reads the free space at most every 100 ms (or 1 MiB of
	// journal writes): from then on nothing may be accepted.
	time.Sleep(200 * time.Millisecond)
	refused := 0
	for i := 20; i < 120; i++ {
		switch c := postOne(i); c {
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Errorf("disk below min_free_bytes: post %d = %d, want 503", i, c)
		}
	}
	if code, _, err := get(r.url + "healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz while the disk is full = %d, %v, want 200", code, err)
	}
	m := metrics(t, r.url)
	logged := strings.Count(r.logs.String(), "journal cannot persist events")

	// Free the space: ingest recovers.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	recovered := 0
	for i := 120; i < 170; i++ {
		if postOne(i) == http.StatusOK {
			recovered++
		}
	}
	scorertest.WaitFor(t, "acknowledged alerts delivered", func() bool {
		return missingFrom(acked, alertIDs(r.out.String())) == 0
	})
	logs := r.logs.String()
	t.Logf("tmpfs 160 MiB, min_free_bytes %d MiB: 100 posts while full → %d × 503, 0 × 200; error logged %d time(s); after freeing: %d/50 accepted; accepted %d, delivered %d, lost %d; rejected{reason=unavailable}=%v",
		minFree>>20, refused, logged, recovered, len(acked), len(acked)-missingFrom(acked, alertIDs(r.out.String())), missingFrom(acked, alertIDs(r.out.String())),
		sum(m, "falco_scorer_events_rejected_total", `reason="unavailable"`))
	if logged != 1 {
		t.Errorf("journal error logged %d times, want once", logged)
	}
	if recovered != 50 {
		t.Errorf("after freeing space %d of 50 posts accepted, want 50", recovered)
	}
	if !strings.Contains(logs, "journal writes recovered") {
		t.Errorf("no recovery log line")
	}
}

func statFree(t testing.TB, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// fillTo writes n bytes to path with ordinary writes (never through mmap).
func fillTo(t testing.TB, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(int64(len(buf)), n)
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatalf("fill: %v", err)
		}
		n -= k
	}
}

// fakeFalco serves Falco's outputs service: after each request on a sub
// stream it writes what is queued.
type fakeFalco struct {
	outputs.UnimplementedServiceServer
	queue chan *outputs.Response
}

func (f *fakeFalco) Sub(stream outputs.Service_SubServer) error {
	for {
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	drain:
		for {
			select {
			case r := <-f.queue:
				if err := stream.Send(r); err != nil {
					return err
				}
			default:
				break drain
			}
		}
	}
}

func grpcResponse(i int) *outputs.Response {
	return &outputs.Response{
		Time:     timestamppb.New(evTime.Add(time.Duration(i) * time.Millisecond)),
		Priority: schema.Priority_WARNING,
		Rule:     fmt.Sprintf("grpc rule %d", i),
		Output:   "grpc event",
		Hostname: "node-1",
		Source:   "syscall",
		OutputFields: map[string]string{"container.id": "c1", "container.image.repository": "nginx",
			"container.image.tag": "1.27", "evt.type": "execve", "proc.pid": strconv.Itoa(i)},
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (c countingListener) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err == nil {
		c.n.Add(1)
	}
	return conn, err
}

// TestGRPCFlapping alternates a working Falco gRPC server with a broken
// one (accepts and closes every connection) on the same unix socket, and
// checks that the input reconnects with backoff (connection attempts per
// second while broken stay low: no busy loop), that every event the server
// sent is accepted, and that losses and reconnects are logged once each,
// not per attempt.
func TestGRPCFlapping(t *testing.T) {
	t.Parallel() // mostly waiting while the server is broken; load only lowers the attempt rate it bounds
	sockDir, err := os.MkdirTemp("", "fsg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "falco.sock")
	ff := &fakeFalco{queue: make(chan *outputs.Response, 1000)}
	var attempts atomic.Int64

	var srv *grpc.Server
	var serveDone chan struct{}
	up := func() {
		os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv = grpc.NewServer()
		outputs.RegisterServiceServer(srv, ff)
		serveDone = make(chan struct{})
		go func() { defer close(serveDone); srv.Serve(countingListener{ln, &attempts}) }()
	}
	down := func() { srv.Stop(); <-serveDone }
	var broken net.Listener
	brokenDone := make(chan struct{})
	breakIt := func() {
		os.Remove(sock)
		var err error
		if broken, err = net.Listen("unix", sock); err != nil {
			t.Fatal(err)
		}
		brokenDone = make(chan struct{})
		go func() {
			defer close(brokenDone)
			for {
				c, err := broken.Accept()
				if err != nil {
					return
				}
				attempts.Add(1)
				c.Close()
			}
		}()
	}
	unbreak := func() { broken.Close(); <-brokenDone }

	up()
	cfg := testConfig(t.TempDir())
	cfg.Inputs.GRPC.Enabled = true
	cfg.Inputs.GRPC.UnixSocket = "unix://" + sock
	r := startService(t, cfg, "info")

	sent := 0
	send := func(k int) {
		for range k {
			ff.queue <- grpcResponse(sent)
			sent++
		}
	}
	deliveredRules := func() int { return len(alertIDs(r.out.String())) }
	send(20)
	scorertest.WaitFor(t, "first events", func() bool { return deliveredRules() >= 20 })

	const brokenFor = 3 * time.Second
	var brokenAttempts []int64
	for cycle := range 3 {
		down()
		breakIt()
		before := attempts.Load()
		time.Sleep(brokenFor)
		brokenAttempts = append(brokenAttempts, attempts.Load()-before)
		unbreak()
		up()
		send(20)
		scorertest.WaitWithin(t, 40*time.Second, fmt.Sprintf("events after reconnect %d", cycle+1), func() bool { return deliveredRules() >= sent })
	}
	m := metrics(t, r.url)
	r.stop(t)
	down()

	logs := r.logs.String()
	lost := strings.Count(logs, "grpc stream lost")
	reconnected := strings.Count(logs, "grpc reconnected")
	got := deliveredRules()
	var worst float64
	for _, a := range brokenAttempts {
		worst = max(worst, float64(a)/brokenFor.Seconds())
	}
	t.Logf("3 flaps (%s broken each): connection attempts while broken %v (max %.1f/s); sent %d, delivered %d; %d 'stream lost' and %d 'reconnected' log lines; grpc_reconnects_total %v",
		brokenFor, brokenAttempts, worst, sent, got, lost, reconnected, sum(m, "falco_scorer_grpc_reconnects_total"))
	if worst > 5 {
		t.Errorf("%.1f connection attempts per second while the server is broken, want ≤ 5 (backoff, no busy loop)", worst)
	}
	if testing.Verbose() {
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "grpc") {
				t.Log(l)
			}
		}
	}
	if got != sent {
		t.Errorf("delivered %d gRPC events, want %d", got, sent)
	}
	if lost > 3*2 || reconnected > 3*2 {
		t.Errorf("logged %d losses and %d reconnects for 3 flaps: logging per attempt?", lost, reconnected)
	}
}
