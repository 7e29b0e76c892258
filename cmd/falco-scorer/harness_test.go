package main

// Shared harness of the service-level reliability tests (e2e_test.go,
// crash_test.go, faults_test.go, hostile_test.go, poison_test.go and the
// soak test): a loopback configuration, the service run in-process or as a
// child process, Falco event generators, receivers standing in for Slack and
// a webhook, an in-process Kafka broker and a metrics reader.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/store"
)

// childEnv, set in a child's environment, makes the test binary run the
// service's main instead of the tests: child-process tests (SIGTERM,
// SIGKILL, soak) run the code under test as built for this test run, race
// detector included, instead of building the service a second time (a
// separate build of every dependency without -race: a minute or more on a
// fresh clone).
const childEnv = "FALCO_SCORER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main() // exits non-zero on error
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childCommand is `falco-scorer args...` run by the test binary itself.
func childCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	return cmd
}

// testConfig is a loopback configuration: HTTP ingest on a free port, Badger
// in dir, stdout sink only, short intervals so tests stay fast.
func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Store.Dir = dir
	cfg.Store.MinFreeBytes = store.MinFreeFloor
	cfg.Inputs.HTTP.Listen = "127.0.0.1:0"
	cfg.Scorer.Workers = 2
	cfg.Scorer.FlushInterval = time.Second
	cfg.Delivery.PollInterval = 50 * time.Millisecond
	cfg.Delivery.InitialBackoff = 50 * time.Millisecond
	cfg.Delivery.MaxBackoff = 500 * time.Millisecond
	cfg.Delivery.SendTimeout = 5 * time.Second
	cfg.ShutdownTimeout = 15 * time.Second
	return cfg
}

// syncBuffer captures output written concurrently.
type syncBuffer = scorertest.SyncBuffer

// running is a service started in-process.
type running struct {
	svc    *service
	url    string // http://addr/
	logs   *syncBuffer
	out    *syncBuffer // the stdout sink
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startService runs newService(cfg) in-process with logs captured at
// level, and waits until it is ready.
func startService(t testing.TB, cfg Config, level string) *running {
	t.Helper()
	r := &running{logs: &syncBuffer{}, out: &syncBuffer{}, done: make(chan error, 1)}
	log, err := newLogger(r.logs, "json", level)
	if err != nil {
		t.Fatal(err)
	}
	r.svc, err = newService(cfg, log, r.out)
	if err != nil {
		t.Fatalf("newService() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.svc.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !r.svc.isReady() || r.svc.httpAddr() == "" {
		select {
		case err := <-r.done:
			t.Fatalf("service stopped before ready: %v\nlogs:\n%s", err, r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready after 30s\nlogs:\n%s", r.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.url = "http://" + r.svc.httpAddr() + "/"
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the service and waits for Run, bounded.
func (r *running) stop(t testing.TB) error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(60 * time.Second):
			r.err = fmt.Errorf("service did not stop within 60s")
			t.Errorf("%v", r.err)
		}
	})
	return r.err
}

// ---- events ----

var evTime = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// falcoAlertJSON is a Falco rule alert (not an observation): it is always
// forwarded. Each i gives a distinct rule so Slack posts one message each.
func falcoAlertJSON(i int, image, prio string) []byte {
	repo, tag, _ := strings.Cut(image, ":")
	return fmt.Appendf(nil, `{"hostname":"node-1","output":"alert %d","priority":%q,"rule":"Test rule %d","source":"syscall",`+
		`"tags":["container","T1059"],"time":%q,"output_fields":{"container.id":"c%06d","container.image.repository":%q,`+
		`"container.image.tag":%q,"evt.type":"execve","k8s.ns.name":"shop","k8s.pod.name":"web-%d","proc.name":"bash","proc.pid":%d}}`,
		i, prio, i, evTime.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i%97, repo, tag, i%13, 1000+i)
}

// observationJSON is one event of the rules falco-scorer ships (tagged
// falco_scorer): scored and learned, forwarded only when anomalous.
func observationJSON(image, container string, pid, i int, evtType string) []byte {
	repo, tag, _ := strings.Cut(image, ":")
	return fmt.Appendf(nil, `{"hostname":"node-1","priority":"Debug","rule":"falco-scorer observation","source":"syscall",`+
		`"tags":["falco_scorer"],"time":%q,"output_fields":{"container.id":%q,"container.image.repository":%q,`+
		`"container.image.tag":%q,"evt.type":%q,"proc.name":"app","proc.pid":%d}}`,
		evTime.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano), container, repo, tag, evtType, pid)
}

// normalPattern is a plausible syscall loop of a web server.
var normalPattern = []string{"accept4", "read", "openat", "fstat", "read", "close", "write", "sendto", "epoll_wait", "recvfrom"}

// sequenceNDJSON is one whole process trace as an NDJSON body: n events of
// normalPattern then procexit. It returns the body and the number of
// learnable events (procexit excluded).
func sequenceNDJSON(image, container string, pid, n int) ([]byte, int) {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		b.Write(observationJSON(image, container, pid, pid*1000+i, normalPattern[i%len(normalPattern)]))
		b.WriteByte('\n')
	}
	b.Write(observationJSON(image, container, pid, pid*1000+n, "procexit"))
	b.WriteByte('\n')
	return b.Bytes(), n
}

func falcoID(raw []byte) string { return scorer.AlertID(raw, scorer.KindFalco) }

// ---- HTTP client ----

var client = &http.Client{Timeout: 30 * time.Second}

// post sends body to url; ndjson selects the batch content type.
func post(url string, body []byte, ndjson bool, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if ndjson {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb, nil
}

// postOK posts and retries 429 (as a well-behaved sender does); it fails
// the test on any other status.
func postOK(t testing.TB, url string, body []byte, ndjson bool) {
	t.Helper()
	for i := 0; ; i++ {
		code, rb, err := post(url, body, ndjson)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		if code == http.StatusOK {
			return
		}
		if code != http.StatusTooManyRequests || i > 2000 {
			t.Fatalf("post = %d %s, want 200", code, rb)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(url string, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// ---- metrics ----

var metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([^ ]+)`)

// metrics reads /metrics and returns name{labels} → value.
func metrics(t testing.TB, base string) map[string]float64 {
	t.Helper()
	code, b, err := get(base + "metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", code, err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := metricLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		out[m[1]+m[2]] = v
	}
	return out
}

// sum adds every series of name whose labels contain all of sub.
func sum(m map[string]float64, name string, sub ...string) float64 {
	var s float64
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, x := range sub {
			if !strings.Contains(labels, x) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// ---- receivers ----

// newReceiver stands in for Slack or a webhook target. fault, when set,
// picks the answer of the n-th request (0-based): a status (0 means 200)
// and a Retry-After ("" for none).
func newReceiver(t testing.TB, fault func(n int) (int, string)) *sinkstest.Receiver {
	t.Helper()
	var respond sinkstest.Respond
	if fault != nil {
		respond = func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
			status, ra := fault(n)
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			if status != 0 {
				w.WriteHeader(status)
			}
			w.Write([]byte("ok"))
		}
	}
	return sinkstest.NewReceiver(t, respond)
}

// idsIn returns which of want appear in any of bodies.
func idsIn(bodies [][]byte, want map[string]bool) map[string]int {
	got := map[string]int{}
	for _, b := range bodies {
		s := string(b)
		for id := range want {
			if strings.Contains(s, id) {
				got[id]++
			}
		}
	}
	return got
}

// alertIDs reads the stdout sink's JSON lines and counts alert ids.
func alertIDs(out string) map[string]int {
	ids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for sc.Scan() {
		var a struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.ID != "" {
			ids[a.ID]++
		}
	}
	return ids
}

// ---- Kafka ----

func newKafkaCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster() = %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// consumeUntil reads topic from the start until done(records) or timeout.
func consumeUntil(t testing.TB, addr, topic string, timeout time.Duration, done func([]*kgo.Record) bool, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient() = %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for !done(recs) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// ---- child process ----

// child is falco-scorer serve running as a separate process.
type child struct {
	cmd    *exec.Cmd
	url    string
	stdout string // file the stdout sink writes to
	stderr *syncBuffer
	exited chan struct{}
	err    error // Wait's result, valid after exited
}

// writeConfig writes cfg's YAML-relevant fields for a child process.
func writeConfig(t testing.TB, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// childYAML is the configuration of a child: loopback port 0, dir, stdout
// sink, flush every second.
func childYAML(dir string, extra string) string {
	return fmt.Sprintf(`log: {level: info, format: json}
data_dir: %q
inputs:
  http: {listen: "127.0.0.1:0", max_in_flight: 256}
scorer: {workers: 2, flush_interval: 1s, queue_size: 16384}
store: {min_free_bytes: 67108864}
delivery: {poll_interval: 50ms, initial_backoff: 50ms, max_backoff: 500ms}
sinks:
  stdout: {enabled: true}
shutdown_timeout: 10s
%s`, dir, extra)
}

// startChild runs `falco-scorer serve --config cfgPath` with its stdout
// appended to stdoutPath, and waits for its HTTP address in the log.
func startChild(t testing.TB, cfgPath, stdoutPath string) *child {
	t.Helper()
	f, err := os.OpenFile(stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{stdout: stdoutPath, stderr: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = childCommand(t, "serve", "--config", cfgPath)
	c.cmd.Stdout = f
	pr, pw := io.Pipe()
	c.cmd.Stderr = pw
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			c.stderr.Write(append(append([]byte(nil), line...), '\n'))
			if !sent {
				var m struct {
					Msg  string `json:"message"`
					HTTP string `json:"http"`
				}
				if json.Unmarshal(line, &m) == nil && m.Msg == "falco-scorer running" && m.HTTP != "" {
					addr <- m.HTTP
					sent = true
				}
			}
		}
	}()
	go func() {
		c.err = c.cmd.Wait()
		pw.Close()
		close(c.exited)
	}()
	select {
	case a := <-addr:
		c.url = "http://" + a + "/"
	case <-c.exited:
		t.Fatalf("child exited before ready: %v\n%s", c.err, c.stderr.String())
	case <-time.After(60 * time.Second):
		c.cmd.Process.Kill()
		t.Fatalf("child not ready after 60s\n%s", c.stderr.String())
	}
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
		// The child is this test binary, race detector included. Races
		// inside Badger alone are its own (see scorertest.OwnDataRaces).
		own, dep := scorertest.OwnDataRaces(c.stderr.String())
		for _, r := range dep {
			t.Logf("the child reported a data race inside Badger (not falco-scorer's code):\n%s", r)
		}
		if len(own) > 0 {
			t.Errorf("the child reported a data race:\n%s", c.stderr.String())
		}
	})
	return c
}

// wait waits for the child to exit within d and reports whether it did.
func (c *child) wait(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func kfakeSASL(user, pass string) []kfake.Opt {
	return []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", user, pass)}
}

func kgoSASL(user, pass string) kgo.Opt {
	return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism())
}

// configShow prints cfg as `falco-scorer config show` does.
func configShow(t testing.TB, cfg Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func secretURL(u string) secret.Secret { return secret.New(u) }
