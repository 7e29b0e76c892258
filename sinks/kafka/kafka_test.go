package kafka_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const rule = "Terminal shell in container"

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster() = %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func testConfig(addr, topic string) kafka.Config {
	c := kafka.DefaultConfig()
	c.Brokers = []string{addr}
	c.Topic = topic
	c.CreateTopic = true
	c.Partitions = 3
	c.DialTimeout = 500 * time.Millisecond
	c.WriteTimeout = 2 * time.Second
	return c
}

func newSink(t *testing.T, cfg kafka.Config, log zerolog.Logger) *kafka.Sink {
	t.Helper()
	s, err := kafka.New(cfg, log)
	if err != nil {
		t.Fatalf("kafka.New() = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func items(t *testing.T, alerts ...*scorer.Alert) []sinks.Item { return sinkstest.Items(t, alerts...) }

// consume reads n records of topic from the start, with kgo so that record
// batch attributes (compression) are visible.
func consume(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("kgo.NewClient() = %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records of %s, want %d", len(recs), topic, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch error: %v", err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(sinks.AlertSchemaJSON()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("alert.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("alert.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func header(r *kgo.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestRecordsKeyHeadersSchemaCompression(t *testing.T) {
	c := newCluster(t)
	addr := c.ListenAddrs()[0]
	schema := compileSchema(t)
	// kgo's CompressionType codes: the record batch attribute bits.
	codec := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	tests := []struct {
		key, compression string
		wantKey          func(*scorer.Alert) string
	}{
		{kafka.KeyImage, "zstd", func(a *scorer.Alert) string { return a.Subject.Image }},
		{kafka.KeyContainer, "snappy", func(a *scorer.Alert) string { return a.Subject.ContainerID }},
		{kafka.KeyRule, "lz4", func(a *scorer.Alert) string { return a.Event.Rule }},
		{kafka.KeyNone, "gzip", func(*scorer.Alert) string { return "" }},
		{kafka.KeyImage, "none", func(a *scorer.Alert) string { return a.Subject.Image }},
	}
	for _, tt := range tests {
		name := tt.key + "/" + tt.compression
		t.Run(name, func(t *testing.T) {
			topic := "alerts-" + tt.key + "-" + tt.compression
			cfg := testConfig(addr, topic)
			cfg.Key, cfg.Compression = tt.key, tt.compression
			s := newSink(t, cfg, zerolog.Nop())
			unscored := sinkstest.FalcoAlert(3, "nginx:1.27", "Read sensitive file untrusted")
			unscored.Score = scorer.Score{Band: "none", Verdict: scorer.VerdictNormal, FalcoPriority: scorer.PriorityWarning}
			batch := items(t,
				sinkstest.FalcoAlert(1, "nginx:1.27", rule),
				sinkstest.AnomalyAlert(2, "redis:7"),
				unscored)
			byID := map[string]sinks.Item{}
			for i, it := range batch {
				byID[it.Alert.ID] = it
				batch[i].Alert = nil // as the dispatcher hands items to a HeaderOnly sink
			}
			if r := s.Send(context.Background(), batch); !r.OK() {
				t.Fatalf("Send() = %v", r)
			}
			recs := consume(t, addr, topic, len(batch))
			for _, r := range recs {
				id, _ := header(r, kafka.HeaderAlertID)
				it, ok := byID[id]
				if !ok {
					t.Fatalf("record with alert_id %q, want one of the sent ids", id)
				}
				a := it.Alert
				if got, want := string(r.Key), tt.wantKey(a); got != want || (tt.key == kafka.KeyNone) != (r.Key == nil) {
					t.Errorf("key = %q (nil %v), want %q", got, r.Key == nil, want)
				}
				if !bytes.Equal(r.Value, it.Payload) {
					t.Errorf("value = %s, want the stored payload unchanged %s", r.Value, it.Payload)
				}
				wantHeaders := map[string]string{
					kafka.HeaderSchema: scorer.AlertSchema, kafka.HeaderAlertID: a.ID, kafka.HeaderKind: a.Kind,
					kafka.HeaderPriority: a.Priority.String(),
					kafka.HeaderBand:     a.Score.Band, kafka.HeaderRule: a.Event.Rule, kafka.HeaderImage: a.Subject.Image,
				}
				if a.Score.HasValue() {
					wantHeaders[kafka.HeaderScore] = strconv.FormatFloat(a.Score.Value, 'g', -1, 64)
				} else if got, ok := header(r, kafka.HeaderScore); ok {
					t.Errorf("header %s = %q on an alert without a score, want it absent", kafka.HeaderScore, got)
				}
				for k, want := range wantHeaders {
					if got, ok := header(r, k); !ok || got != want {
						t.Errorf("header %s = %q (present %v), want %q", k, got, ok, want)
					}
				}
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Value))
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.Validate(inst); err != nil {
					t.Errorf("value does not match alert.schema.json: %v", err)
				}
				if got := r.Attrs.CompressionType(); got != codec[tt.compression] {
					t.Errorf("record batch compression = %d, want %d (%s)", got, codec[tt.compression], tt.compression)
				}
			}
		})
	}
}

func TestKafkaValueGolden(t *testing.T) {
	c := newCluster(t)
	addr := c.ListenAddrs()[0]
	s := newSink(t, testConfig(addr, "golden"), zerolog.Nop())
	if r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule))); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	got := consume(t, addr, "golden", 1)[0].Value
	// The value as stored, one line: the file ends in a newline.
	scorertest.Golden(t, filepath.Join("testdata", "kafka_value.golden"), append(got, '\n'), *update, "Kafka value")
}

func TestPermanentForOversizedRecord(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs()[0], "big")
	cfg.BatchBytes = 2000
	s := newSink(t, cfg, zerolog.Nop())
	big := sinkstest.FalcoAlert(1, "nginx:1.27", rule)
	big.Reason = strings.Repeat("x", 4000)
	r := s.Send(context.Background(), items(t, big))
	if r.Decision() != sinks.StatusPermanent || r.Cause == nil || !r.Cause.Permanent || r.Cause.Reason != "too_large" {
		t.Errorf("Send(oversized) = %v, want permanent too_large", r)
	}
}

// TestPartitioning checks that keyed records go where Java's default
// partitioner (murmur2, as kgo's StickyKeyPartitioner reproduces it) puts
// them, and that records without a key (key: none) are spread instead of
// all landing in one partition.
func TestPartitioning(t *testing.T) {
	c := newCluster(t)
	addr := c.ListenAddrs()[0]
	const partitions, n = 6, 60
	java := kgo.StickyKeyPartitioner(nil) // murmur2 for keyed records, as Java
	for _, key := range []string{kafka.KeyImage, kafka.KeyNone} {
		t.Run(key, func(t *testing.T) {
			topic := "partitioning-" + key
			cfg := testConfig(addr, topic)
			cfg.Key, cfg.Partitions = key, partitions
			s := newSink(t, cfg, zerolog.Nop())
			var alerts []*scorer.Alert
			for i := range n {
				alerts = append(alerts, sinkstest.FalcoAlert(i, fmt.Sprintf("registry.local/app-%d:1", i), rule))
			}
			if r := s.Send(context.Background(), items(t, alerts...)); !r.OK() {
				t.Fatalf("Send() = %v", r)
			}
			perPartition := map[int32]int{}
			tp := java.ForTopic(topic)
			for _, r := range consume(t, addr, topic, n) {
				perPartition[r.Partition]++
				if key == kafka.KeyNone {
					continue
				}
				if want := int32(tp.Partition(&kgo.Record{Key: r.Key}, partitions)); r.Partition != want {
					t.Errorf("key %q in partition %d, want %d (Java's murmur2 partitioner)", r.Key, r.Partition, want)
				}
			}
			// 60 random choices among 6 partitions miss 3 of them with a
			// probability below 1e-16.
			if key == kafka.KeyNone && len(perPartition) < 4 {
				t.Errorf("key none: records per partition = %v, want them spread over at least 4 of %d", perPartition, partitions)
			}
		})
	}
}

// TestProduceErrorClassification answers one produce request with a broker
// error code: CORRUPT_MESSAGE (a CRC mismatch on the way) is transient and
// the next Send succeeds; INVALID_RECORD is permanent.
func TestProduceErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		code      int16
		permanent bool
		reason    string
	}{
		{"corrupt message", 2, false, "corrupt_message"},
		{"invalid record", 87, true, "invalid_record"},
		{"record list too large", 18, true, "too_large"}, // the dispatcher then sends one by one
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			cfg := testConfig(c.ListenAddrs()[0], "produce-errors")
			cfg.MaxAttempts = 1 // kafka-go itself retries temporary errors otherwise
			s := newSink(t, cfg, zerolog.Nop())
			// Create the topic before the control function is armed.
			if r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(0, "nginx:1.27", rule))); !r.OK() {
				t.Fatalf("Send(first) = %v", r)
			}
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				pr := req.(*kmsg.ProduceRequest)
				resp := pr.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range pr.Topics {
					st := kmsg.NewProduceResponseTopic()
					st.Topic, st.TopicID = rt.Topic, rt.TopicID
					for _, rp := range rt.Partitions {
						sp := kmsg.NewProduceResponseTopicPartition()
						sp.Partition, sp.ErrorCode = rp.Partition, tt.code
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true // once: the control function is dropped
			})
			r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule)))
			if r.OK() || r.Cause == nil {
				t.Fatalf("Send() = %v, want the broker's error %d", r, tt.code)
			}
			if r.Cause.Permanent != tt.permanent || r.Cause.Reason != tt.reason {
				t.Errorf("Send() = %v (permanent %v, reason %q), want permanent %v, reason %q",
					r, r.Cause.Permanent, r.Cause.Reason, tt.permanent, tt.reason)
			}
			// The broker answered for the partition: a per-record failure,
			// which the dispatcher may set aside while other keys flow.
			if !r.PerItem || r.Count(sinks.StatusDelivered) != 0 || len(r.Status) != 1 {
				t.Errorf("Send() = %v, want the one record failed one by one (PerItem)", r)
			}
			if !tt.permanent {
				if r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule))); !r.OK() {
					t.Errorf("Send(again) = %v, want all delivered once the broker takes the record", r)
				}
			}
		})
	}
}

// TestBrokerOutageLosesNothing stops the broker under a steady stream and
// restarts it on the same port with the same data directory: every alert
// arrives once it is back, and each key's alerts keep their order.
func TestBrokerOutageLosesNothing(t *testing.T) {
	dir := t.TempDir()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addr := c1.ListenAddrs()[0]
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)

	cfg := testConfig(addr, "outage")
	cfg.MaxAttempts = 1
	cfg.WriteTimeout = 500 * time.Millisecond
	sink := newSink(t, cfg, zerolog.Nop())
	ob := sinkstest.NewOutbox()
	dcfg := sinks.DefaultConfig()
	dcfg.BatchSize = 20
	dcfg.PollInterval = 20 * time.Millisecond
	dcfg.InitialBackoff, dcfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	dcfg.SendTimeout = 2 * time.Second
	m, err := sinks.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d, err := sinks.NewDispatcher(sink, ob, dcfg, zerolog.Nop(), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(ctx) }()

	images := []string{"nginx:1.27", "redis:7", "postgres:17"}
	var mu sync.Mutex
	sent := map[string][]string{} // image -> alert ids in enqueue order
	streamDone := make(chan struct{})
	stopStream := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; ; i++ {
			select {
			case <-stopStream:
				return
			case <-time.After(3 * time.Millisecond):
			}
			img := images[i%len(images)]
			a := sinkstest.FalcoAlert(i, img, rule)
			mu.Lock()
			sent[img] = append(sent[img], a.ID)
			mu.Unlock()
			ob.PutAlert("kafka", a)
			d.Wake()
		}
	}()

	time.Sleep(300 * time.Millisecond)
	c1.Close() // broker down
	pendingAtStop, _ := ob.PendingCount("kafka")
	time.Sleep(1500 * time.Millisecond)
	pendingDuringOutage, _ := ob.PendingCount("kafka")
	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.Ports(port))
	if err != nil {
		t.Fatalf("restart broker on port %d: %v", port, err)
	}
	defer c2.Close()
	time.Sleep(300 * time.Millisecond)
	close(stopStream)
	<-streamDone

	deadline := time.Now().Add(20 * time.Second)
	for {
		n, _ := ob.PendingCount("kafka")
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts still pending 20s after the broker returned", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-runDone

	total := 0
	for _, ids := range sent {
		total += len(ids)
	}
	if dead := ob.DeadLetters("kafka"); len(dead) != 0 {
		t.Fatalf("dead letters = %d, want 0", len(dead))
	}
	if pendingDuringOutage <= pendingAtStop {
		t.Errorf("pending during outage = %d (at stop %d), want growth: the outage did not hold anything back", pendingDuringOutage, pendingAtStop)
	}
	recs := consume(t, c2.ListenAddrs()[0], "outage", total)
	got := map[string][]string{}
	seen := map[string]bool{}
	dups := 0
	for _, r := range recs {
		id, _ := header(r, kafka.HeaderAlertID)
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		got[string(r.Key)] = append(got[string(r.Key)], id)
	}
	for img, want := range sent {
		if !slices.Equal(got[img], want) {
			t.Errorf("key %s: %d distinct records in order %v, want %d in enqueue order", img, len(got[img]), got[img][:min(5, len(got[img]))], len(want))
		}
	}
	t.Logf("accepted %d alerts, delivered %d distinct (%d duplicates), pending at outage start %d, after 1.5s outage %d",
		total, len(seen), dups, pendingAtStop, pendingDuringOutage)
}

func TestSASLAndSecretRedaction(t *testing.T) {
	const password = "pw-Sup3rSecret-1234"
	tests := []struct {
		mechanism string
		password  string
		wantOK    bool
	}{
		{kafka.MechanismSCRAMSHA256, password, true},
		{kafka.MechanismSCRAMSHA512, password, true},
		{kafka.MechanismPlain, password, true},
		{kafka.MechanismSCRAMSHA256, "wrong-" + password, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/ok=%v", tt.mechanism, tt.wantOK), func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(tt.mechanism, "scorer", password))
			var logs bytes.Buffer
			var logMu sync.Mutex
			log := zerolog.New(zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) {
				logMu.Lock()
				defer logMu.Unlock()
				return logs.Write(p)
			}))).Level(zerolog.DebugLevel)
			pwFile := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(pwFile, []byte(tt.password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(c.ListenAddrs()[0], "sasl")
			// kfake speaks no TLS here; the test is about authentication and redaction.
			cfg.SASL = kafka.SASLConfig{Mechanism: tt.mechanism, Username: "scorer", Password: secret.New("inline-unused"), PasswordFile: pwFile, AllowPlaintext: true}
			cfg.MaxAttempts = 1
			s := newSink(t, cfg, log)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r := s.Send(ctx, items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule)))
			if r.OK() != tt.wantOK {
				t.Fatalf("Send() = %v, want ok %v", r, tt.wantOK)
			}
			logMu.Lock()
			text := logs.String() + fmt.Sprint(r) + fmt.Sprintf("%+v %v", cfg, cfg)
			logMu.Unlock()
			if strings.Contains(text, password) || strings.Contains(text, "inline-unused") {
				t.Errorf("password found in logs, error or printed config:\n%s", text)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*kafka.Config)
		want   string
	}{
		{"default", func(*kafka.Config) {}, ""},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, "brokers: empty"},
		{"bad broker", func(c *kafka.Config) { c.Brokers = []string{"kafka"} }, "brokers[0]:"},
		{"no topic", func(c *kafka.Config) { c.Topic = "" }, "topic: empty"},
		{"bad key", func(c *kafka.Config) { c.Key = "pod" }, "key:"},
		{"bad compression", func(c *kafka.Config) { c.Compression = "brotli" }, "compression:"},
		{"acks none", func(c *kafka.Config) { c.RequiredAcks = "none" }, "required_acks:"},
		{"cert without key", func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem"} }, "tls.cert_file:"},
		{"tls options while off", func(c *kafka.Config) { c.TLS.CAFile = "ca.pem" }, "tls.enabled:"},
		{"sasl without password", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "u"} }, "sasl.password:"},
		{"sasl bad mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "GSSAPI"} }, "sasl.mechanism:"},
		// PLAIN sends the password itself: without TLS anyone on the path reads it.
		{"sasl plain without tls", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordEnv: "P"}
		}, "sasl.allow_plaintext:"},
		{"sasl plain without tls, allowed", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordEnv: "P", AllowPlaintext: true}
		}, ""},
		{"sasl plain over tls", func(c *kafka.Config) {
			c.TLS.Enabled = true
			c.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordEnv: "P"}
		}, ""},
		{"sasl scram without tls", func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", PasswordEnv: "P"}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafka.DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestBrokerDownIsSinkWide: with no broker answering, Send fails the whole
// batch, transient (the dispatcher retries it in place, in order), not
// record by record.
func TestBrokerDownIsSinkWide(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig(c.ListenAddrs()[0], "down")
	cfg.MaxAttempts = 1
	cfg.WriteTimeout = 2 * time.Second
	s := newSink(t, cfg, zerolog.Nop())
	if r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(0, "nginx:1.27", rule))); !r.OK() {
		t.Fatalf("Send(first) = %v", r)
	}
	c.Close()
	r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule), sinkstest.FalcoAlert(2, "redis:7", rule)))
	if r.OK() {
		t.Fatal("Send() with the broker down delivered")
	}
	if r.PerItem || r.Cause == nil || r.Cause.Permanent || r.Count(sinks.StatusRetry) != 2 {
		t.Errorf("Send() with the broker down = %v, want the whole batch failed, transient", r)
	}
}

// TestOrderKey: the dispatcher keeps order per record key; with key: none
// nothing is ordered, so every alert is its own key.
func TestOrderKey(t *testing.T) {
	a := items(t, sinkstest.FalcoAlert(0, "nginx:1.27", rule), sinkstest.FalcoAlert(1, "nginx:1.27", rule))
	for _, tt := range []struct {
		key  string
		same bool
	}{{kafka.KeyImage, true}, {kafka.KeyRule, true}, {kafka.KeyContainer, true}, {kafka.KeyNone, false}} {
		cfg := testConfig("127.0.0.1:1", "t")
		cfg.Key = tt.key
		s := newSink(t, cfg, zerolog.Nop())
		if got := s.OrderKey(a[0]) == s.OrderKey(a[1]); got != tt.same {
			t.Errorf("key %s: OrderKey equal for two alerts of one image and rule = %v, want %v", tt.key, got, tt.same)
		}
	}
}

// TestCreateTopicNotAllowed: with create_topic on, a producer that may
// write to the topic but not create topics (the broker answers
// TOPIC_AUTHORIZATION_FAILED even for an existing topic) still delivers,
// instead of failing every Send until the alerts expire.
func TestCreateTopicNotAllowed(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, "locked"))
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.CreateTopicsRequest)
		resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, 29 // TOPIC_AUTHORIZATION_FAILED
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var logs bytes.Buffer
	s := newSink(t, testConfig(c.ListenAddrs()[0], "locked"), zerolog.New(&logs))
	if r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(0, "nginx:1.27", rule))); !r.OK() {
		t.Fatalf("Send() = %v, want all delivered (the topic exists; creating it is not allowed)", r)
	}
	if !strings.Contains(logs.String(), "not allowed to create the topic") {
		t.Errorf("no warning about the refused creation:\n%s", logs.String())
	}
}
