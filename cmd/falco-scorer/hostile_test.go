package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// TestHostileBodies posts crafted bodies to the running service: each gets
// its 4xx with a JSON reason, nothing is accepted, and the service keeps
// serving valid events afterwards.
func TestHostileBodies(t *testing.T) {
	cfg := testConfig(t.TempDir())
	r := startService(t, cfg, "info")

	valid := string(falcoAlertJSON(1, "nginx:1.27", "Warning"))
	nested := func(depth int) []byte {
		return []byte(`{"rule":"r","priority":"Warning","time":"2026-11-24T12:00:00Z","output_fields":{"x":` +
			strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}`)
	}
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range 16 { // 16 MiB of zeros in about 16 KiB
		zw.Write(zeros)
	}
	zw.Close()
	cases := []struct {
		name   string
		body   []byte
		ndjson bool
		hdr    []string
		want   int
	}{
		{"nested 100k deep", nested(100_000), false, nil, 400},
		{"nested 100k deep in ndjson", append(append([]byte(valid), '\n'), nested(100_000)...), true, nil, 400},
		{"body of 2 MiB", []byte(`{"rule":"` + strings.Repeat("a", 2<<20) + `"}`), false, nil, 413},
		{"gzip bomb 16 MiB", bomb.Bytes(), false, []string{"Content-Encoding", "gzip"}, 413},
		{"truncated gzip", bomb.Bytes()[:100], false, []string{"Content-Encoding", "gzip"}, 400},
		{"binary garbage", []byte("\x00\xff\xfe{{{\x01"), false, nil, 400},
		{"wrong types", []byte(`{"rule":7,"priority":"Warning","time":"2026-11-24T12:00:00Z"}`), false, nil, 400},
		{"array instead of object", []byte(`[` + valid + `]`), false, nil, 400},
		{"unknown content type", []byte(valid), false, []string{"Content-Type", "application/xml"}, 415},
		{"100k empty ndjson lines", bytes.Repeat([]byte("\n"), 100_000), true, nil, 400},
	}
	for _, tc := range cases {
		start := time.Now()
		code, body, err := post(r.url, tc.body, tc.ndjson, tc.hdr...)
		t.Logf("%s: %d in %s", tc.name, code, time.Since(start).Round(time.Millisecond))
		if err != nil || code != tc.want || !bytes.Contains(body, []byte(`"reason"`)) {
			t.Errorf("%s: POST = %d %.200s, %v; want %d with a JSON reason", tc.name, code, body, err, tc.want)
		}
	}
	m := metrics(t, r.url)
	if acc := sum(m, "falco_scorer_events_accepted_total"); acc != 0 {
		t.Errorf("events_accepted_total after hostile bodies = %v, want 0", acc)
	}
	start := time.Now()
	postOK(t, r.url, []byte(valid), false)
	scorertest.WaitFor(t, "valid event delivered", func() bool { return len(alertIDs(r.out.String())) == 1 })
	t.Logf("valid event delivered in %s", time.Since(start))
	start = time.Now()
	r.stop(t)
	t.Logf("stopped in %s", time.Since(start))
	t.Logf("%d hostile bodies refused with 4xx; rejected by reason: %v", len(cases), rejectedByReason(m))
}

func rejectedByReason(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "falco_scorer_events_rejected_total{") {
			i := strings.Index(k, `reason="`)
			if i >= 0 {
				reason := k[i+8:]
				reason = reason[:strings.IndexByte(reason, '"')]
				out[reason] += v
			}
		}
	}
	return out
}

// heapMiB returns the live heap after a GC.
func heapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// TestDistinctImagesAndSymbols floods the service with observations of
// distinct images, containers, processes and system-call names, and checks
// that what it keeps in memory is capped (max_images, max_sequences,
// max_vocabulary), with the caps visible in /metrics, and that the heap
// stops growing.
func TestDistinctImagesAndSymbols(t *testing.T) {
	const (
		maxImages = 200
		maxSeqs   = 1000
		batches   = 40
		batch     = 500 // events per NDJSON post
	)
	cfg := testConfig(t.TempDir())
	cfg.Scorer.MaxImages = maxImages
	cfg.Scorer.MaxSequences = maxSeqs
	cfg.Scorer.MaxVocabulary = 16
	cfg.Scorer.ContainerCache = 1000
	r := startService(t, cfg, "info")

	var heaps []float64
	n := 0
	for b := range batches {
		var body bytes.Buffer
		for range batch {
			// A new image, container and process every event.
			img := fmt.Sprintf("registry.example/hostile/img%07d:1", n)
			body.Write(observationJSON(img, fmt.Sprintf("c%07d", n), n, n, fmt.Sprintf("sys_%d", n%7)))
			body.WriteByte('\n')
			n++
		}
		postOK(t, r.url, body.Bytes(), true)
		if b%10 == 9 {
			scorertest.WaitWithin(t, 60*time.Second, "queue drained", func() bool {
				m := metrics(t, r.url)
				return sum(m, "falco_scorer_events_scored_total") >= float64(n)
			})
			heaps = append(heaps, heapMiB())
		}
	}
	// One image, one process, a new system-call name every event.
	var body bytes.Buffer
	for i := range batch {
		body.Write(observationJSON("registry.example/hostile/vocab:1", "vocab", 1, i, fmt.Sprintf("sys_%07d", i)))
		body.WriteByte('\n')
	}
	postOK(t, r.url, body.Bytes(), true)
	n += batch
	scorertest.WaitWithin(t, 60*time.Second, "vocabulary flood scored", func() bool {
		return sum(metrics(t, r.url), "falco_scorer_events_scored_total") >= float64(n)
	})
	time.Sleep(2 * cfg.Scorer.FlushInterval) // gauges are updated on the flush tick
	m := metrics(t, r.url)
	images := sum(m, "falco_scorer_images")
	seqs := sum(m, "falco_scorer_sequences_live")
	closedCap := sum(m, "falco_scorer_sequences_closed_total", `reason="capacity"`)
	oov := sum(m, "falco_scorer_symbols_out_of_vocabulary_total")
	t.Logf("%d events, %d distinct images: images in memory %v (max_images %d), live sequences %v (max %d), closed at capacity %v, out-of-vocabulary %v; heap MiB after each 5000 events %.0f",
		n, batches*batch, images, maxImages, seqs, maxSeqs, closedCap, oov, heaps)
	if images > maxImages {
		t.Errorf("falco_scorer_images = %v, want ≤ max_images %d (images are never evicted from memory)", images, maxImages)
	}
	if seqs > maxSeqs {
		t.Errorf("falco_scorer_sequences_live = %v, want ≤ %d", seqs, maxSeqs)
	}
	if closedCap == 0 {
		t.Errorf("sequences_closed_total{reason=capacity} = 0, want > 0")
	}
	if oov < batch-16 {
		t.Errorf("symbols_out_of_vocabulary_total = %v, want ≥ %d (%d names, max_vocabulary 16)", oov, batch-16, batch)
	}
}

// TestSlowLoris opens many connections that send headers one byte at a
// time, and checks that the server cuts them off after read_header_timeout
// while valid requests keep being served.
func TestSlowLoris(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Inputs.HTTP.ReadHeaderTimeout = 500 * time.Millisecond
	cfg.Inputs.HTTP.ReadTimeout = time.Second
	r := startService(t, cfg, "info")
	addr := strings.TrimSuffix(strings.TrimPrefix(r.url, "http://"), "/")

	const conns = 200
	// A connection not cut off by giveUp (40× read_header_timeout, so a
	// busy machine does not get there) counts as held.
	const giveUp = 20 * time.Second
	var cut atomic.Int64
	var longest atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			start := time.Now()
			req := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nX-Slow: " + strings.Repeat("a", 100)
			for i := 0; i < len(req); i++ {
				if _, err := c.Write([]byte{req[i]}); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
				if time.Since(start) > giveUp {
					return
				}
			}
			c.SetReadDeadline(time.Now().Add(giveUp))
			buf := make([]byte, 512)
			// The server's 408 or EOF; a read deadline reached means the
			// connection was still held.
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return
				}
			}
			cut.Add(1)
			d := int64(time.Since(start))
			for {
				old := longest.Load()
				if d <= old || longest.CompareAndSwap(old, d) {
					break
				}
			}
		})
	}
	// Meanwhile, valid events still go through.
	time.Sleep(200 * time.Millisecond)
	served := 0
	for i := range 20 {
		code, _, err := post(r.url, falcoAlertJSON(i, "nginx:1.27", "Warning"), false)
		if err == nil && code == http.StatusOK {
			served++
		}
	}
	wg.Wait()
	t.Logf("%d slow-loris connections: %d cut off, slowest held %s (read_header_timeout 500ms); %d/20 valid posts served meanwhile",
		conns, cut.Load(), time.Duration(longest.Load()).Round(10*time.Millisecond), served)
	if cut.Load() != conns {
		t.Errorf("%d of %d slow connections were cut off within %s", cut.Load(), conns, giveUp)
	}
	if served != 20 {
		t.Errorf("%d of 20 valid posts served during the slow-loris attack", served)
	}
}

// TestFlood posts far more than the service can take, from many clients,
// with a small queue: the service answers 429 (never hangs or grows), every
// event answered 200 is delivered, and the heap stays bounded.
func TestFlood(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Scorer.QueueSize = 2000
	cfg.Inputs.HTTP.MaxInFlight = 16
	// Shed at once: this test is about the bound, not about riding out a
	// burst (TestHTTPOverloadWait covers the wait).
	cfg.Inputs.HTTP.OverloadWait = 0
	r := startService(t, cfg, "info")

	const clients, perClient, batch = 16, 20, 100
	var mu sync.Mutex
	acked := map[string]bool{}
	codes := map[int]int{}
	heapBefore := heapMiB()
	var peak atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSample:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if v := int64(ms.HeapAlloc); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for k := range perClient {
				var body bytes.Buffer
				ids := make([]string, 0, batch)
				for j := range batch {
					raw := falcoAlertJSON((c*perClient+k)*batch+j, "nginx:1.27", "Warning")
					ids = append(ids, falcoID(raw))
					body.Write(raw)
					body.WriteByte('\n')
				}
				code, _, err := post(r.url, body.Bytes(), true)
				mu.Lock()
				if err == nil {
					codes[code]++
					if code == http.StatusOK {
						for _, id := range ids {
							acked[id] = true
						}
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stopSample)
	<-sampled
	scorertest.WaitWithin(t, 120*time.Second, "acknowledged flood delivered", func() bool {
		return missingFrom(acked, alertIDs(r.out.String())) == 0
	})
	heapAfter := heapMiB()
	offered := clients * perClient * batch
	t.Logf("flood: %d events offered in %d posts; answers %v; accepted %d, delivered %d, lost 0; heap %.0f MiB before, peak %.0f MiB, %.0f MiB after",
		offered, clients*perClient, codes, len(acked), len(acked)-missingFrom(acked, alertIDs(r.out.String())),
		heapBefore, float64(peak.Load())/(1<<20), heapAfter)
	if codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("no 429 under a flood beyond queue_size: answers %v", codes)
	}
	for code := range codes {
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Errorf("unexpected answer %d under flood (%v)", code, codes)
		}
	}
}
