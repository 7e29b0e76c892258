package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure one load run.
type Options struct {
	URL         string        // ingest endpoint, e.g. http://127.0.0.1:2801/
	Connections int           // concurrent keep-alive connections, one sender each
	Duration    time.Duration // how long senders start new requests
	// Rate is the target of events per second over all connections; 0 sends
	// as fast as the server answers (closed loop). With a rate, latency is
	// measured from each request's scheduled time, so a stalled server is
	// not hidden by senders that fell behind (no coordinated omission).
	Rate    float64
	Batch   int           // events per request; above 1 the body is NDJSON
	Token   string        // bearer token, if the receiver wants one
	Timeout time.Duration // per request
	Mix     Mix
	// MaxSamples bounds the latency samples kept per connection (memory);
	// later requests are counted but their latency is not recorded.
	MaxSamples int
	// Transport, when set, carries the requests instead of connections to
	// URL: the tests pace a run on a fake clock (testing/synctest) over an
	// in-memory transport, where real sockets would stop the clock.
	Transport http.RoundTripper
}

// DefaultOptions are those of the benchmarks: 16 connections for 10 s,
// one event per request, closed loop.
func DefaultOptions(url string) Options {
	return Options{URL: url, Connections: 16, Duration: 10 * time.Second, Batch: 1,
		Timeout: 10 * time.Second, Mix: DefaultMix(), MaxSamples: 4 << 20}
}

// Result is what a load run measured.
type Result struct {
	Elapsed   time.Duration // first request to last answer
	Requests  int64
	Events    int64         // events sent
	Accepted  int64         // events answered 200
	Alerts    int64         // accepted events that were Falco rule alerts
	Status    map[int]int64 // requests by HTTP status
	Errors    int64         // requests without an HTTP answer (transport errors, timeouts)
	FirstErr  string        // first transport error, for the report
	Latencies []time.Duration
	Truncated bool // some latencies were not recorded (MaxSamples)
	// AcceptedBytes is the body bytes of the requests answered 200: what
	// the receiver took in, for the disk budget's write amplification.
	AcceptedBytes int64
}

// AcceptedPerSec is the rate of events answered 200.
func (r Result) AcceptedPerSec() float64 { return float64(r.Accepted) / r.Elapsed.Seconds() }

// RequestsPerSec is the rate of requests answered, whatever the status.
func (r Result) RequestsPerSec() float64 {
	var n int64
	for _, c := range r.Status {
		n += c
	}
	return float64(n) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0..1) of the recorded latencies of
// answered requests, or 0 when none was recorded.
func (r Result) Percentile(q float64) time.Duration {
	return percentile(r.Latencies, q)
}

// percentile of sorted durations by the nearest-rank method.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Print writes the result for people.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "elapsed      %s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "requests     %d (%.0f/s)\n", r.Requests, r.RequestsPerSec())
	fmt.Fprintf(w, "events       %d sent, %d accepted (%.0f/s), %d of them Falco alerts\n", r.Events, r.Accepted, r.AcceptedPerSec(), r.Alerts)
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", c, r.Status[c]))
	}
	fmt.Fprintf(w, "status       %s\n", strings.Join(parts, ", "))
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors       %d (first: %s)\n", r.Errors, r.FirstErr)
	}
	fmt.Fprintf(w, "latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		r.Percentile(0.5), r.Percentile(0.9), r.Percentile(0.99), r.Percentile(0.999), r.Percentile(1))
	if r.Truncated {
		fmt.Fprintf(w, "             (latency samples truncated at the per-connection limit)\n")
	}
}

// conn is one sender's tally, merged at the end.
type conn struct {
	requests, events, accepted, alerts, errors int64
	acceptedBytes                              int64
	status                                     map[int]int64
	lat                                        []time.Duration
	truncated                                  bool
	firstErr                                   error
}

// Run drives opts.URL with opts.Connections senders for opts.Duration and
// returns what was measured. It stops early, with what it has, when ctx ends.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Connections < 1 || opts.Duration <= 0 || opts.Batch < 1 || opts.URL == "" {
		return Result{}, errors.New("load: url, connections, duration and batch must be set")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 4 << 20
	}
	fleet, err := NewGenerator(opts.Mix)
	if err != nil {
		return Result{}, fmt.Errorf("load: %w", err)
	}
	gens := fleet.Split(opts.Connections)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        opts.Connections,
		MaxIdleConnsPerHost: opts.Connections,
		MaxConnsPerHost:     opts.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	var rt http.RoundTripper = tr
	if opts.Transport != nil {
		rt = opts.Transport
	}
	client := &http.Client{Transport: rt, Timeout: opts.Timeout}
	ctype := "application/json"
	if opts.Batch > 1 {
		ctype = "application/x-ndjson"
	}

	var interval time.Duration // per sender, when rate-limited
	if opts.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(opts.Connections) / opts.Rate * float64(opts.Batch))
	}
	conns := make([]*conn, opts.Connections)
	start := time.Now()
	stop := start.Add(opts.Duration)
	var wg sync.WaitGroup
	for i := range conns {
		c := &conn{status: map[int]int64{}, lat: make([]time.Duration, 0, 1<<14)}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send(ctx, client, gens[i], opts, ctype, start, stop, interval, i)
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Status: map[int]int64{}}
	for _, c := range conns {
		res.Requests += c.requests
		res.Events += c.events
		res.Accepted += c.accepted
		res.AcceptedBytes += c.acceptedBytes
		res.Alerts += c.alerts
		res.Errors += c.errors
		res.Truncated = res.Truncated || c.truncated
		if c.firstErr != nil && res.FirstErr == "" {
			res.FirstErr = c.firstErr.Error()
		}
		for k, v := range c.status {
			res.Status[k] += v
		}
		res.Latencies = append(res.Latencies, c.lat...)
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// send is one connection's loop.
func (c *conn) send(ctx context.Context, client *http.Client, g *Generator, opts Options, ctype string,
	start, stop time.Time, interval time.Duration, i int) {
	var body []byte
	next := start
	if interval > 0 {
		// Spread the senders over one interval so they do not fire together.
		next = start.Add(interval * time.Duration(i) / time.Duration(opts.Connections))
	}
	for ctx.Err() == nil {
		now := time.Now()
		if interval > 0 {
			if !next.Before(stop) {
				return // no wait for a slot past the end: Elapsed ends at the last answer
			}
			if next.After(now) {
				if !sleepUntil(ctx, next) {
					return
				}
				now = time.Now()
			}
		}
		if !now.Before(stop) || (interval > 0 && !next.Before(stop)) {
			return
		}
		sched := now
		if interval > 0 {
			sched = next
			next = next.Add(interval)
		}
		// A fresh buffer for every request: the transport may still be
		// writing the previous body after Do returned (a server that answers
		// before reading it all, as a 429 does), so reusing it races.
		body = make([]byte, 0, cap(body))
		alerts := 0
		for k := 0; k < opts.Batch; k++ {
			if k > 0 {
				body = append(body, '\n')
			}
			var alert bool
			body, alert = g.Append(body, time.Now())
			if alert {
				alerts++
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, opts.URL, bytes.NewReader(body))
		if err != nil {
			c.note(err)
			return
		}
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ctype)
		if opts.Token != "" {
			req.Header.Set("Authorization", "Bearer "+opts.Token)
		}
		c.requests++
		c.events += int64(opts.Batch)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.note(err)
			if !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
				return
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat := time.Since(sched)
		c.status[resp.StatusCode]++
		if resp.StatusCode == http.StatusOK {
			c.accepted += int64(opts.Batch)
			c.acceptedBytes += int64(len(body))
			c.alerts += int64(alerts)
		}
		if len(c.lat) < opts.MaxSamples {
			c.lat = append(c.lat, lat)
		} else {
			c.truncated = true
		}
	}
}

func (c *conn) note(err error) {
	c.errors++
	if c.firstErr == nil {
		c.firstErr = err
	}
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
