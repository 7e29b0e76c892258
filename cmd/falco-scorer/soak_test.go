//go:build soak

package main

// The soak test runs only with -tags soak (make soak): it measures the
// service's maximum ingest rate, then holds half of it for SOAK_DURATION
// (default 10m), sampling RSS, goroutines and ingest latency every minute,
// and writes a report to SOAK_REPORT (default: a file in the temp dir).

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// kafkaOutage is the broker outage of TestKafkaOutage in the soak build:
// the 30 s of issue 9.
const kafkaOutage = 30 * time.Second

// soakGen builds NDJSON batches of 100 events: observation sequences of 20
// events and a procexit over 40 images, with one Falco alert in ten.
type soakGen struct {
	next atomic.Int64

	mu    sync.Mutex
	acked map[string]bool
}

func (g *soakGen) batch() ([]byte, []string) {
	var b bytes.Buffer
	var ids []string
	for b.Len() == 0 || strings.Count(b.String(), "\n") < 100 {
		n := int(g.next.Add(1))
		img := fmt.Sprintf("registry.example/soak/app%02d:1", n%40)
		if n%10 == 0 {
			raw := falcoAlertJSON(n, img, "Warning")
			ids = append(ids, falcoID(raw))
			b.Write(raw)
			b.WriteByte('\n')
			continue
		}
		body, _ := sequenceNDJSON(img, fmt.Sprintf("soak%03d", n%200), n, 20)
		b.Write(body)
	}
	return b.Bytes(), ids
}

func (g *soakGen) ack(ids []string) {
	g.mu.Lock()
	for _, id := range ids {
		g.acked[id] = true
	}
	g.mu.Unlock()
}

func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return 0
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func TestSoak(t *testing.T) {
	duration := 10 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		duration = d
	}
	report := os.Getenv("SOAK_REPORT")
	if report == "" {
		report = filepath.Join(os.TempDir(), "falco-scorer-soak-report.md")
	}
	sample := time.Minute
	if duration < 5*time.Minute {
		sample = duration / 5
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeConfig(t, cfgPath, childYAML(filepath.Join(dir, "data"), ""))
	out := filepath.Join(dir, "stdout.jsonl")
	c := startChild(t, cfgPath, out)
	pid := c.cmd.Process.Pid
	g := &soakGen{acked: map[string]bool{}}

	// 1. Maximum rate: 8 clients posting batches back to back for 20 s.
	var maxEvents atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, ids := g.batch()
				code, _, err := post(c.url, body, true)
				if err == nil && code == http.StatusOK {
					maxEvents.Add(int64(bytes.Count(body, []byte("\n"))))
					g.ack(ids)
				} else {
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	const probe = 20 * time.Second
	time.Sleep(probe)
	close(stop)
	wg.Wait()
	maxRate := float64(maxEvents.Load()) / probe.Seconds()
	target := maxRate / 2
	t.Logf("maximum ingest rate %.0f events/s; soaking at %.0f events/s for %s", maxRate, target, duration)
	time.Sleep(10 * time.Second) // let the backlog of the probe drain

	// 2. Half of it for the duration, paced.
	var (
		mu        sync.Mutex
		lat       []time.Duration
		codes     = map[int]int{}
		accepted  int64
		rows      []string
		rssFirst  int
		goroFirst float64
	)
	interval := time.Duration(float64(time.Second) * 100 / target)
	stop = make(chan struct{})
	work := make(chan struct{}, 64)
	for range 8 {
		wg.Go(func() {
			for range work {
				body, ids := g.batch()
				start := time.Now()
				code, _, err := post(c.url, body, true)
				d := time.Since(start)
				mu.Lock()
				if err == nil {
					codes[code]++
					lat = append(lat, d)
					if code == http.StatusOK {
						accepted += int64(bytes.Count(body, []byte("\n")))
						g.ack(ids)
					}
				} else {
					codes[-1]++
				}
				mu.Unlock()
			}
		})
	}
	go func() {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				close(work)
				return
			case <-tk.C:
				select {
				case work <- struct{}{}:
				default: // the service is behind: count it as a skipped batch
					mu.Lock()
					codes[0]++
					mu.Unlock()
				}
			}
		}
	}()
	header := "| minute | RSS MiB | goroutines | accepted events/s | p50 ms | p99 ms | max ms | answers |\n|---|---|---|---|---|---|---|---|"
	begin := time.Now()
	var rssMax int
	for i := 1; time.Since(begin) < duration; i++ {
		time.Sleep(sample)
		m := metrics(t, c.url)
		rss := rssKiB(pid)
		goro := m["go_goroutines"]
		mu.Lock()
		l, cs, acc := lat, codes, accepted
		lat, codes, accepted = nil, map[int]int{}, 0
		mu.Unlock()
		if i == 1 {
			rssFirst, goroFirst = rss, goro
		}
		rssMax = max(rssMax, rss)
		row := fmt.Sprintf("| %.1f | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %v |", time.Since(begin).Minutes(), float64(rss)/1024, goro,
			float64(acc)/sample.Seconds(), float64(pct(l, 0.5).Microseconds())/1000, float64(pct(l, 0.99).Microseconds())/1000,
			float64(pct(l, 1).Microseconds())/1000, cs)
		rows = append(rows, row)
		t.Log(row)
	}
	close(stop)
	wg.Wait()
	rssLast := rssKiB(pid)
	goroLast := metrics(t, c.url)["go_goroutines"]

	// 3. Stop and check nothing acknowledged was lost.
	time.Sleep(5 * time.Second)
	c.cmd.Process.Signal(syscall.SIGTERM)
	exited := c.wait(30 * time.Second)
	g.mu.Lock()
	acked := g.acked
	g.mu.Unlock()
	got := delivered(t, []string{out})
	lost := missingFrom(acked, got)

	var rep strings.Builder
	fmt.Fprintf(&rep, "# falco-scorer soak report\n\n%s, %s, GOMAXPROCS of the child: default; %s at half of the measured maximum.\n\n",
		time.Now().UTC().Format(time.RFC3339), strings.TrimSpace(cpuModel()), duration)
	fmt.Fprintf(&rep, "- maximum ingest rate (8 clients, NDJSON batches of 100, 20 s): %.0f events/s\n", maxRate)
	fmt.Fprintf(&rep, "- soak rate: %.0f events/s (one batch of 100 every %s)\n", target, interval.Round(time.Microsecond))
	fmt.Fprintf(&rep, "- RSS: first sample %.0f MiB, max %.0f MiB, last %.0f MiB\n", float64(rssFirst)/1024, float64(rssMax)/1024, float64(rssLast)/1024)
	fmt.Fprintf(&rep, "- goroutines: first sample %.0f, last %.0f\n", goroFirst, goroLast)
	fmt.Fprintf(&rep, "- Falco alerts acknowledged %d, delivered %d, lost %d; clean exit on SIGTERM: %v\n\n", len(acked), len(acked)-lost, lost, exited && c.err == nil)
	fmt.Fprintf(&rep, "answers: 200 accepted, 429 back-pressure, 0 = batch skipped by the pacer because 8 posts were in flight, -1 = transport error\n\n%s\n%s\n", header, strings.Join(rows, "\n"))
	if err := os.WriteFile(report, []byte(rep.String()), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	}
	t.Logf("report written to %s\n%s", report, rep.String())

	if lost > 0 {
		t.Errorf("%d acknowledged alerts lost", lost)
	}
	if !exited || c.err != nil {
		t.Errorf("child exit after SIGTERM: exited %v, err %v", exited, c.err)
	}
	if goroLast > goroFirst+20 {
		t.Errorf("goroutines grew from %.0f to %.0f", goroFirst, goroLast)
	}
	if float64(rssLast) > 1.5*float64(rssFirst)+64*1024 {
		t.Errorf("RSS grew from %d KiB to %d KiB", rssFirst, rssLast)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return fmt.Sprintf("%s ×%d", strings.TrimSpace(v), strings.Count(string(b), "processor\t:"))
		}
	}
	return "unknown CPU"
}
