package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "falco-loadgen:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("falco-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := DefaultOptions("")
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:2801/", "receiver URL")
	fs.IntVar(&o.Connections, "c", o.Connections, "connections (one sender each)")
	fs.DurationVar(&o.Duration, "d", o.Duration, "duration")
	fs.Float64Var(&o.Rate, "rate", 0, "target events/s over all connections (0: as fast as answered)")
	fs.IntVar(&o.Batch, "batch", o.Batch, "events per request (>1: NDJSON body)")
	fs.StringVar(&o.Token, "token", "", "bearer token")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "per-request timeout")
	fs.IntVar(&o.Mix.Images, "images", o.Mix.Images, "distinct images")
	fs.IntVar(&o.Mix.ContainersPerImage, "containers", o.Mix.ContainersPerImage, "containers per image")
	fs.IntVar(&o.Mix.ProcsPerContainer, "procs", o.Mix.ProcsPerContainer, "live processes per container")
	fs.Float64Var(&o.Mix.AlertRatio, "alerts", o.Mix.AlertRatio, "fraction of events that are Falco rule alerts")
	fs.Uint64Var(&o.Mix.Seed, "seed", o.Mix.Seed, "random seed")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	noop := fs.String("serve-noop", "", "instead of loading, serve a no-op receiver (reads the body, answers 200) on this address")
	capture := fs.Int("capture", 0, "instead of loading, write this many events as NDJSON to standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *noop != "":
		return serveNoop(ctx, *noop, stdout)
	case *capture > 0:
		return writeCapture(stdout, o.Mix, *capture, time.Now())
	}
	res, err := Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(summarize(res))
	}
	fmt.Fprintf(stdout, "target       %s, %d connections, %s, batch %d", o.URL, o.Connections, o.Duration, o.Batch)
	if o.Rate > 0 {
		fmt.Fprintf(stdout, ", rate %.0f/s", o.Rate)
	}
	fmt.Fprintln(stdout)
	res.Print(stdout)
	return nil
}

// Summary is the JSON form of a Result.
type Summary struct {
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	Requests       int64         `json:"requests"`
	Events         int64         `json:"events"`
	Accepted       int64         `json:"accepted"`
	AcceptedPerSec float64       `json:"accepted_per_second"`
	Alerts         int64         `json:"alerts_accepted"`
	Status         map[int]int64 `json:"status"`
	Errors         int64         `json:"errors"`
	P50ms          float64       `json:"p50_ms"`
	P90ms          float64       `json:"p90_ms"`
	P99ms          float64       `json:"p99_ms"`
	MaxMs          float64       `json:"max_ms"`
}

func summarize(r Result) Summary {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		ElapsedSeconds: r.Elapsed.Seconds(), Requests: r.Requests, Events: r.Events, Accepted: r.Accepted,
		AcceptedPerSec: r.AcceptedPerSec(), Alerts: r.Alerts, Status: r.Status, Errors: r.Errors,
		P50ms: ms(r.Percentile(0.5)), P90ms: ms(r.Percentile(0.9)), P99ms: ms(r.Percentile(0.99)), MaxMs: ms(r.Percentile(1)),
	}
}

// serveNoop is the reference receiver: it reads the body and answers 200,
// nothing else. It prints "listening ADDR" once it accepts connections.
func serveNoop(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: noopHandler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// noopHandler reads the whole body and answers 200 with a small JSON body,
// as a receiver that does no work would.
func noopHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{\"accepted\":1}\n")
	})
}

// writeCapture writes n events as NDJSON, timed from t0 at 20 µs steps
// (a capture to replay), to w.
func writeCapture(w io.Writer, m Mix, n int, t0 time.Time) error {
	g, err := NewGenerator(m)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<20)
	for i := 0; i < n; i++ {
		buf, _ = g.Append(buf, t0.Add(time.Duration(i)*20*time.Microsecond))
		buf = append(buf, '\n')
		if len(buf) > 1<<20-4096 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err = w.Write(buf)
	return err
}
