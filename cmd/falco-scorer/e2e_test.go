package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

// e2eSinks enables Kafka (kfake), Slack and the webhook (httptest) on cfg.
func e2eSinks(t *testing.T, cfg *Config, brokerAddr string, slack, webhook *sinkstest.Receiver) {
	t.Helper()
	cfg.Sinks.Kafka.Enabled = true
	cfg.Sinks.Kafka.Brokers = []string{brokerAddr}
	cfg.Sinks.Kafka.Topic = "alerts"
	cfg.Sinks.Kafka.CreateTopic = true
	cfg.Sinks.Kafka.Partitions = 3
	cfg.Sinks.Kafka.ReplicationFactor = 1
	cfg.Sinks.Kafka.DialTimeout = 500 * time.Millisecond
	cfg.Sinks.Kafka.WriteTimeout = 2 * time.Second
	cfg.Sinks.Kafka.MaxAttempts = 1
	if slack != nil {
		cfg.Sinks.Slack.Enabled = true
		cfg.Sinks.Slack.WebhookURL = secret.New(slack.URL + "/services/T000/B000/slacksecret0123")
		cfg.Sinks.Slack.MinInterval = 5 * time.Millisecond
	}
	if webhook != nil {
		cfg.Sinks.Webhook.Enabled = true
		cfg.Sinks.Webhook.URL = secret.New(webhook.URL + "/falco")
	}
}

// TestEndToEnd runs the whole service in-process against an in-process
// Kafka broker and httptest Slack and webhook receivers, posts Falco
// alerts and observations the way Falco's http_output does, and checks
// that every Falco alert reaches every sink with its id, key and headers.
func TestEndToEnd(t *testing.T) {
	kc := newKafkaCluster(t)
	broker := kc.ListenAddrs()[0]
	slack, webhook := newReceiver(t, nil), newReceiver(t, nil)
	cfg := testConfig(t.TempDir())
	e2eSinks(t, &cfg, broker, slack, webhook)
	r := startService(t, cfg, "info")

	const alerts, sequences, seqLen = 60, 40, 12
	images := []string{"docker.io/library/nginx:1.27", "ghcr.io/acme/api:2.3.1", "redis:7"}
	want := map[string]string{} // alert id → image
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < alerts; i += 4 {
				img := images[i%len(images)]
				raw := falcoAlertJSON(i, img, "Warning")
				postOK(t, r.url, raw, false) // one event per POST, as http_output does
				mu.Lock()
				want[falcoID(raw)] = img
				mu.Unlock()
			}
			for s := w; s < sequences; s += 4 {
				body, _ := sequenceNDJSON(images[s%len(images)], fmt.Sprintf("obs%02d", s%5), 5000+s, seqLen)
				postOK(t, r.url, body, true)
			}
		})
	}
	wg.Wait()

	recs := consumeUntil(t, broker, "alerts", 30*time.Second, func(recs []*kgo.Record) bool { return len(recs) >= alerts })
	scorertest.WaitFor(t, "slack and webhook deliveries", func() bool {
		return len(slack.Bodies()) >= alerts && len(webhook.Bodies()) >= alerts
	})
	m := metrics(t, r.url)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run() = %v", err)
	}

	wantIDs := map[string]bool{}
	for id := range want {
		wantIDs[id] = true
	}
	// Kafka: one record per alert, keyed by image, with the documented headers.
	gotKafka := map[string]int{}
	for _, rec := range recs {
		id := header(rec, kafka.HeaderAlertID)
		gotKafka[id]++
		img, ok := want[id]
		if !ok {
			t.Errorf("kafka record with unexpected alert_id %q", id)
			continue
		}
		if string(rec.Key) != img {
			t.Errorf("kafka key of %s = %q, want %q", id, rec.Key, img)
		}
		for k, v := range map[string]string{kafka.HeaderSchema: scorer.AlertSchema, kafka.HeaderKind: scorer.KindFalco,
			kafka.HeaderPriority: "Warning", kafka.HeaderImage: img} {
			if got := header(rec, k); got != v {
				t.Errorf("kafka header %s of %s = %q, want %q", k, id, got, v)
			}
		}
		var a struct {
			Schema string          `json:"schema"`
			ID     string          `json:"id"`
			Falco  json.RawMessage `json:"falco"`
		}
		if err := json.Unmarshal(rec.Value, &a); err != nil || a.ID != id || a.Schema != scorer.AlertSchema {
			t.Errorf("kafka value of %s: id %q schema %q err %v", id, a.ID, a.Schema, err)
		}
	}
	gotSlack := idsIn(slack.Bodies(), wantIDs)
	gotHook := idsIn(webhook.Bodies(), wantIDs)
	gotStdout := alertIDs(r.out.String())
	for name, got := range map[string]map[string]int{"kafka": gotKafka, "slack": gotSlack, "webhook": gotHook, "stdout": gotStdout} {
		missing := 0
		for id := range wantIDs {
			if got[id] == 0 {
				missing++
			}
		}
		if missing > 0 || len(want) != alerts {
			t.Errorf("%s: %d of %d alerts missing", name, missing, len(want))
		}
	}
	if n := len(recs); n != alerts {
		t.Errorf("kafka records = %d, want %d (no duplicates in a clean run)", n, alerts)
	}
	if n := len(webhook.Bodies()); n != alerts {
		t.Errorf("webhook posts = %d, want %d", n, alerts)
	}
	accepted := sum(m, "falco_scorer_events_accepted_total")
	if wantAcc := float64(alerts + sequences*(seqLen+1)); accepted != wantAcc {
		t.Errorf("events_accepted_total = %v, want %v", accepted, wantAcc)
	}
	if got := sum(m, "falco_scorer_events_scored_total", `kind="falco"`); got != alerts {
		t.Errorf("events_scored_total{kind=falco} = %v, want %d", got, alerts)
	}
	t.Logf("accepted %v events; delivered %d alerts to kafka, %d to slack, %d to webhook, %d to stdout",
		accepted, len(gotKafka), len(gotSlack), len(gotHook), len(gotStdout))
}

// TestAuthAndSecrets configures every credential the service knows (ingest
// token, admin token, Slack webhook URL, webhook bearer token, Kafka SASL
// password), provokes failures that log (unauthorized requests, Slack and
// webhook 5xx), and checks the tokens are enforced and that no secret value
// appears in the service's captured logs or in `config show`.
func TestAuthAndSecrets(t *testing.T) {
	const (
		ingestToken = "ingest-tok-8c1f0e"
		adminToken  = "admin-tok-51aa9d"
		hookToken   = "hook-tok-77e2b3"
		saslPass    = "sasl-pass-0b9c4e"
		slackPath   = "/services/T0AAA/B0BBB/slack-secret-3f9a"
	)
	kc := newKafkaCluster(t, kfakeSASL("scorer", saslPass)...)
	fail := func(n int) (int, string) {
		if n < 3 {
			return 500, ""
		}
		return 0, ""
	}
	webhook := newReceiver(t, fail)
	cfg := testConfig(t.TempDir())
	e2eSinks(t, &cfg, kc.ListenAddrs()[0], webhook, webhook)
	// Slack points at a closed port: net/http's *url.Error prints the whole
	// URL, which is the credential of an incoming webhook.
	dead := newReceiver(t, nil)
	dead.Close()
	cfg.Sinks.Slack.WebhookURL = secret.New(dead.URL + slackPath)
	cfg.Sinks.Webhook.BearerToken = secret.New(hookToken)
	cfg.Sinks.Kafka.SASL.Mechanism = "PLAIN"
	cfg.Sinks.Kafka.SASL.Username = "scorer"
	cfg.Sinks.Kafka.SASL.Password = secret.New(saslPass)
	cfg.Sinks.Kafka.SASL.AllowPlaintext = true // kfake has no TLS here
	cfg.Inputs.HTTP.Token = secret.New(ingestToken)
	cfg.Admin.Token = secret.New(adminToken)
	cfg.ShutdownTimeout = 3 * time.Second // Slack stays down: do not wait long for its outbox
	r := startService(t, cfg, "debug")

	raw := falcoAlertJSON(1, "nginx:1.27", "Warning")
	cases := []struct {
		name, method, path, auth string
		want                     int
	}{
		{"ingest without token", "POST", "", "", 401},
		{"ingest with wrong token", "POST", "", "Bearer " + adminToken, 401},
		{"ingest with token", "POST", "", "Bearer " + ingestToken, 200},
		{"admin without token", "GET", "api/v1/baselines", "", 401},
		{"admin with ingest token", "GET", "api/v1/baselines", "Bearer " + ingestToken, 401},
		{"admin with token", "GET", "api/v1/baselines", "Bearer " + adminToken, 200},
		{"dead letters without token", "GET", "api/v1/deadletters?sink=slack", "", 401},
	}
	for _, tc := range cases {
		var code int
		var err error
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		if tc.method == "POST" {
			code, _, err = post(r.url+tc.path, raw, false, hdr...)
		} else {
			code, _, err = get(r.url+tc.path, hdr...)
		}
		if err != nil || code != tc.want {
			t.Errorf("%s: %s /%s = %d, %v, want %d", tc.name, tc.method, tc.path, code, err, tc.want)
		}
	}
	id := falcoID(raw)
	scorertest.WaitFor(t, "deliveries after the 5xx", func() bool {
		return len(idsIn(webhook.Bodies(), map[string]bool{id: true})) == 1
	})
	if !strings.Contains(r.logs.String(), "connection refused") {
		t.Errorf("no Slack connection error logged; the URL redaction was not exercised")
	}
	recs := consumeUntil(t, kc.ListenAddrs()[0], "alerts", 20*time.Second,
		func(recs []*kgo.Record) bool { return len(recs) >= 1 }, kgoSASL("scorer", saslPass))
	if len(recs) != 1 {
		t.Errorf("kafka (SASL) records = %d, want 1", len(recs))
	}
	r.stop(t)

	// config show of the same configuration, through the CLI's marshalling.
	shown := configShow(t, cfg)
	logs := r.logs.String()
	for _, s := range []string{ingestToken, adminToken, hookToken, saslPass, "slack-secret-3f9a", slackPath} {
		if strings.Contains(logs, s) {
			t.Errorf("captured logs contain the secret %q", s)
		}
		if strings.Contains(shown, s) {
			t.Errorf("config show prints the secret %q", s)
		}
	}
	if testing.Verbose() {
		t.Logf("logs (for the record):\n%s", logs)
	}
	t.Logf("%d log bytes scanned, no secret found", len(logs))
}
