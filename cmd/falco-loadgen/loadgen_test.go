package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func TestGeneratorEventsDecode(t *testing.T) {
	tests := []struct {
		name       string
		mix        Mix
		wantAlerts [2]float64 // bounds of the alert fraction
	}{
		{"default", DefaultMix(), [2]float64{0.17, 0.23}},
		{"observations only", Mix{Images: 3, ContainersPerImage: 2, ProcsPerContainer: 2, AlertRatio: 0, ExitRate: 0.01, Seed: 2}, [2]float64{0, 0}},
		{"alerts only", Mix{Images: 50, ContainersPerImage: 1, ProcsPerContainer: 1, AlertRatio: 1, Seed: 3}, [2]float64{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGenerator(tt.mix)
			if err != nil {
				t.Fatalf("NewGenerator() = %v", err)
			}
			const n = 5000
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			alerts, exits := 0, 0
			images := map[string]bool{}
			for i := range n {
				at := now.Add(time.Duration(i) * time.Millisecond)
				b, alert := g.Append(nil, at)
				ev, err := scorer.DecodeJSON(b)
				if err != nil {
					t.Fatalf("DecodeJSON(%s) = %v", b, err)
				}
				if got := ev.HasTag("falco_scorer"); got == alert {
					t.Errorf("event %d: HasTag(falco_scorer) = %v, alert = %v", i, got, alert)
				}
				if alert {
					alerts++
					if ev.Priority > scorer.PriorityNotice { // higher severity has a lower value
						t.Errorf("alert priority %v, want Notice or above (routed to Kafka)", ev.Priority)
					}
				}
				if ev.Field("evt.type") == "procexit" {
					exits++
				}
				if !ev.Time.Equal(at) {
					t.Errorf("event time = %v, want %v", ev.Time, at)
				}
				if got, ok := evtTime(b); !ok || got != at.UnixNano() {
					t.Errorf("evtTime() = %d, %v, want %d", got, ok, at.UnixNano())
				}
				images[ev.Field("container.image.repository")+":"+ev.Field("container.image.tag")] = true
			}
			frac := float64(alerts) / n
			if frac < tt.wantAlerts[0] || frac > tt.wantAlerts[1] {
				t.Errorf("alert fraction = %.3f, want in %v", frac, tt.wantAlerts)
			}
			if tt.mix.ExitRate > 0 && exits == 0 {
				t.Errorf("no procexit in %d events with exit rate %g", n, tt.mix.ExitRate)
			}
			if want := min(tt.mix.Images, 50); len(images) < want/2 {
				t.Errorf("distinct images = %d, want about %d", len(images), want)
			}
		})
	}
}

// TestSplit: however many senders, they send the traffic of one fleet.
func TestSplit(t *testing.T) {
	tests := []struct {
		name           string
		n              int
		wantContainers int // per generator
	}{
		{"one", 1, 1000},
		{"sixteen", 16, 1000 / 16},
		{"more senders than containers", 2000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGenerator(DefaultMix())
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, sub := range g.Split(tt.n) {
				if got := len(sub.containers); got < tt.wantContainers || got > tt.wantContainers+1 {
					t.Errorf("generator has %d containers, want %d or %d", got, tt.wantContainers, tt.wantContainers+1)
				}
				for _, c := range sub.containers {
					seen[c.id]++
				}
			}
			if len(seen) != len(g.containers) {
				t.Errorf("Split(%d) covers %d containers, want %d", tt.n, len(seen), len(g.containers))
			}
			if tt.n <= len(g.containers) {
				for id, k := range seen {
					if k != 1 {
						t.Errorf("container %s in %d generators, want 1", id, k)
					}
				}
			}
		})
	}
}

func TestMixValidate(t *testing.T) {
	tests := []struct {
		name string
		mix  Mix
		want string
	}{
		{"no images", Mix{ContainersPerImage: 1, ProcsPerContainer: 1}, "images"},
		{"no containers", Mix{Images: 1, ProcsPerContainer: 1}, "containers"},
		{"no processes", Mix{Images: 1, ContainersPerImage: 1}, "processes"},
		{"ratio", Mix{Images: 1, ContainersPerImage: 1, ProcsPerContainer: 1, AlertRatio: 2}, "alert ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGenerator(tt.mix)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewGenerator(%+v) = %v, want an error about %q", tt.mix, err, tt.want)
			}
		})
	}
}

// TestRun drives an in-process receiver that answers 429 to every third
// request as fast as it answers (closed loop): the counts, statuses and
// latencies must add up. TestRunRate covers the paced mode.
func TestRun(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") == "application/x-ndjson" && bytes.Count(body, []byte("\n")) != 4 {
			t.Errorf("batch body has %d newlines, want 4", bytes.Count(body, []byte("\n")))
		}
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
	}))
	defer srv.Close()
	tests := []struct {
		name  string
		batch int
	}{
		{"closed loop", 1},
		{"batches", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions(srv.URL + "/")
			o.Connections, o.Duration, o.Batch = 4, 300*time.Millisecond, tt.batch
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatalf("Run() = %v", err)
			}
			if res.Errors != 0 {
				t.Errorf("Run().Errors = %d (%s), want 0", res.Errors, res.FirstErr)
			}
			ok, shed := res.Status[http.StatusOK], res.Status[http.StatusTooManyRequests]
			if ok+shed != res.Requests || shed == 0 {
				t.Errorf("Run().Status = %v, want 200s and 429s adding up to %d requests", res.Status, res.Requests)
			}
			if res.Accepted != ok*int64(tt.batch) {
				t.Errorf("Run().Accepted = %d, want %d", res.Accepted, ok*int64(tt.batch))
			}
			if int64(len(res.Latencies)) != res.Requests || res.Percentile(0.5) <= 0 || res.Percentile(1) < res.Percentile(0.5) {
				t.Errorf("latencies: %d samples for %d requests, p50 %s, max %s", len(res.Latencies), res.Requests, res.Percentile(0.5), res.Percentile(1))
			}
		})
	}
}

// handlerTransport serves requests with h in memory: no sockets, so a run
// inside a synctest bubble keeps its fake clock.
type handlerTransport struct{ h http.Handler }

func (tr handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	tr.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// TestRunRate: with a rate, the senders send exactly the scheduled requests
// (4 connections at 400/s for 500 ms: one every 10 ms per connection, 50
// each) and measure latency from each request's scheduled time. It runs on
// synctest's fake clock against a receiver that takes 1 ms, so the counts
// and latencies are exact whatever else the machine is doing.
func TestRunRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(time.Millisecond)
			if n.Add(1)%3 == 0 {
				w.WriteHeader(http.StatusTooManyRequests)
			}
		})
		o := DefaultOptions("http://loadgen.test/")
		o.Connections, o.Duration, o.Rate = 4, 500*time.Millisecond, 400
		o.Transport = handlerTransport{h}
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if res.Requests != 200 || res.Events != 200 || res.Errors != 0 {
			t.Errorf("Run() = %d requests, %d events, %d errors (%s); want 200, 200, 0", res.Requests, res.Events, res.Errors, res.FirstErr)
		}
		if ok, shed := res.Status[http.StatusOK], res.Status[http.StatusTooManyRequests]; ok != 134 || shed != 66 || res.Accepted != 134 {
			t.Errorf("Run().Status = %v, Accepted = %d; want 134 200s (accepted) and 66 429s", res.Status, res.Accepted)
		}
		if len(res.Latencies) != 200 || res.Percentile(0) != time.Millisecond || res.Percentile(1) != time.Millisecond {
			t.Errorf("latencies: %d samples, min %s, max %s; want 200 of 1ms", len(res.Latencies), res.Percentile(0), res.Percentile(1))
		}
		// The last request is scheduled 497.5 ms after the start.
		if want := 498500 * time.Microsecond; res.Elapsed != want {
			t.Errorf("Run().Elapsed = %s, want %s", res.Elapsed, want)
		}
	})
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0, 1}}
	for _, tt := range tests {
		if got := percentile(ds, tt.q); got != tt.want {
			t.Errorf("percentile(1..10, %g) = %d, want %d", tt.q, got, tt.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil, 0.5) = %d, want 0", got)
	}
}

// TestCLI runs the command against the no-op handler and checks that the
// capture mode writes decodable NDJSON.
func TestCLI(t *testing.T) {
	srv := httptest.NewServer(noopHandler())
	defer srv.Close()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-url", srv.URL + "/", "-c", "2", "-d", "200ms"}, &out, &errb); err != nil {
		t.Fatalf("run() = %v (%s)", err, errb.String())
	}
	for _, want := range []string{"accepted", "status       200:", "latency      p50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"-capture", "100"}, &out, &errb); err != nil {
		t.Fatalf("run(-capture) = %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 100 {
		t.Fatalf("capture lines = %d, want 100", len(lines))
	}
	for i, l := range lines {
		if _, err := scorer.DecodeJSON([]byte(l)); err != nil {
			t.Errorf("line %d: DecodeJSON = %v", i+1, err)
		}
	}
	if err := run(context.Background(), []string{"-c", "0"}, &out, &errb); err == nil {
		t.Errorf("run(-c 0) = nil, want an error")
	}
	if err := run(context.Background(), []string{"stray"}, &out, &errb); err == nil || !strings.Contains(err.Error(), strconv.Quote("stray")) {
		t.Errorf("run(stray) = %v, want unexpected argument", err)
	}
}
