package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const rule = "Terminal shell in container"

// memSlackURL is the in-memory Slack's address (sinkstest.NewMemReceiver).
const memSlackURL = "http://slack.test"

// newMemSink is newSink posting to the in-memory Slack f.
func newMemSink(t *testing.T, f *sinkstest.Receiver, cfg slack.Config, log zerolog.Logger) *slack.Sink {
	t.Helper()
	s := newSink(t, cfg, log)
	slack.SetTransport(s, f)
	return s
}

const webhookPath = "/services/T0001/B0002/xoxWEBHOOKSECRET42"

func webhookConfig(base string) slack.Config {
	c := slack.DefaultConfig()
	c.WebhookURL = secret.New(base + webhookPath)
	c.MinInterval = 10 * time.Millisecond
	c.DigestInterval = 0 // a digest per batch; TestSteadyStreamDigestsOncePerInterval covers the interval
	return c
}

func newSink(t *testing.T, cfg slack.Config, log zerolog.Logger) *slack.Sink {
	t.Helper()
	s, err := slack.New(cfg, log)
	if err != nil {
		t.Fatalf("slack.New() = %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func items(t *testing.T, alerts ...*scorer.Alert) []sinks.Item { return sinkstest.Items(t, alerts...) }

// startDispatcher runs a dispatcher for s over ob; stop cancels it and
// waits for Run to return.
func startDispatcher(t *testing.T, s sinks.Sink, ob *sinkstest.Outbox, dc sinks.Config, log zerolog.Logger, reg prometheus.Registerer) (d *sinks.Dispatcher, stop func()) {
	t.Helper()
	m, err := sinks.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d, err = sinks.NewDispatcher(s, ob, dc, log, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return d, func() { cancel(); <-done }
}

// run drives sink with a dispatcher over ob until cond holds.
func run(t *testing.T, sink sinks.Sink, ob *sinkstest.Outbox, cfg sinks.Config, log zerolog.Logger, cond func() bool) {
	t.Helper()
	_, stop := startDispatcher(t, sink, ob, cfg, log, prometheus.NewRegistry())
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dispatcherConfig() sinks.Config {
	c := sinks.DefaultConfig()
	c.PollInterval = 10 * time.Millisecond
	c.InitialBackoff, c.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	scorertest.Golden(t, filepath.Join("testdata", name), scorertest.IndentJSON(t, got), *update, "Slack payload")
}

func TestPayloadGolden(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	ctx := context.Background()
	// One incident: a full message (with 2 more in the batch), then a digest.
	burst := items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule), sinkstest.FalcoAlert(2, "nginx:1.27", rule),
		sinkstest.FalcoAlert(61, "nginx:1.27", rule), sinkstest.AnomalyAlert(3, "redis:7"))
	if r := s.Send(ctx, burst); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	if r := s.Send(ctx, items(t, sinkstest.FalcoAlert(301, "nginx:1.27", rule))); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	reqs := f.Requests()
	if len(reqs) != 3 {
		t.Fatalf("messages = %d, want 3 (falco group, anomaly, digest)", len(reqs))
	}
	golden(t, "slack_falco.golden", reqs[0].Body)
	golden(t, "slack_anomaly.golden", reqs[1].Body)
	golden(t, "slack_digest.golden", reqs[2].Body)
	if !bytes.Contains(reqs[0].Body, []byte("and 2 more like this in 1 min")) {
		t.Errorf("first message lacks 'and 2 more like this in 1 min':\n%s", reqs[0].Body)
	}
	if !bytes.Contains(reqs[2].Body, []byte("and 3 more like this in 5 min")) {
		t.Errorf("digest lacks 'and 3 more like this in 5 min':\n%s", reqs[2].Body)
	}
}

func TestRetryAfter429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sinkstest.NewMemReceiver(func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
			if n == 0 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			io.WriteString(w, "ok")
		})
		s := newMemSink(t, f, webhookConfig(memSlackURL), zerolog.Nop())
		ob := sinkstest.NewOutbox()
		ob.PutAlert("slack", sinkstest.FalcoAlert(1, "nginx:1.27", rule))
		run(t, s, ob, dispatcherConfig(), zerolog.Nop(), func() bool { return ob.Acked("slack") == 1 })
		reqs := f.Requests()
		if len(reqs) != 2 {
			t.Fatalf("requests = %d, want 2 (429, then delivery)", len(reqs))
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
			t.Errorf("retried %v after the 429, want >= 1s (Retry-After: 1)", gap)
		}
		if !bytes.Equal(reqs[0].Body, reqs[1].Body) {
			t.Error("retried message differs from the rate-limited one")
		}
	})
}

func TestBurstBecomesDigests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sinkstest.NewMemReceiver(nil)
		cfg := webhookConfig(memSlackURL)
		cfg.MinInterval = time.Second // Slack's limit, as deployed
		s := newMemSink(t, f, cfg, zerolog.Nop())
		ob := sinkstest.NewOutbox()
		const n = 500
		for i := range n {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, "nginx:1.27", rule))
		}
		start := time.Now()
		run(t, s, ob, dispatcherConfig(), zerolog.Nop(), func() bool { return ob.Acked("slack") == n })
		reqs := f.Requests()
		t.Logf("%d alerts -> %d messages in %v", n, len(reqs), time.Since(start).Round(time.Millisecond))
		if len(reqs) > 6 {
			t.Errorf("messages = %d, want a handful (<= 6)", len(reqs))
		}
		for i := 1; i < len(reqs); i++ {
			if gap := reqs[i].At.Sub(reqs[i-1].At); gap < time.Second {
				t.Errorf("message %d sent %v after the previous, want >= 1s", i, gap)
			}
		}
		last := string(reqs[len(reqs)-1].Body)
		if !strings.Contains(last, fmt.Sprintf("and %d more like this", n-1)) {
			t.Errorf("last digest does not account for all %d alerts: %s", n-1, last)
		}
	})
}

func TestBadRequestDeadLetters(t *testing.T) {
	f := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "invalid_blocks")
	})
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	ob := sinkstest.NewOutbox()
	ob.PutAlert("slack", sinkstest.FalcoAlert(1, "nginx:1.27", rule))
	run(t, s, ob, dispatcherConfig(), zerolog.Nop(), func() bool { return len(ob.DeadLetters("slack")) == 1 })
	dl := ob.DeadLetters("slack")[0]
	if !strings.Contains(dl.Reason, "400") || !strings.Contains(dl.Reason, "invalid_blocks") || !strings.HasPrefix(dl.Reason, "permanent") {
		t.Errorf("dead letter reason = %q, want permanent ... 400 ... invalid_blocks", dl.Reason)
	}
	if len(f.Requests()) != 1 {
		t.Errorf("requests = %d, want 1 (a 400 is not retried)", len(f.Requests()))
	}
}

// botConfig returns a bot-mode config posting to base.
func botConfig(base string) slack.Config {
	c := slack.DefaultConfig()
	c.BotToken, c.Channel, c.APIURL = secret.New("xoxb-test-token"), "C0SECURITY", base+"/api/chat.postMessage"
	c.MinInterval = 10 * time.Millisecond
	c.DigestInterval = 0
	return c
}

// TestErrorClassification checks each Slack answer: only errors about the
// message itself are permanent (the dispatcher dead-letters it); auth,
// config and "gone" answers concern every message, so they are retried and
// say what to fix.
func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		bot       bool
		status    int    // webhook mode: HTTP status
		body      string // webhook mode: body; bot mode: the API's error
		permanent bool
		reason    string
		errHas    string
	}{
		{"400 invalid_payload", false, 400, "invalid_payload", true, "payload", "400 invalid_payload: Slack rejected this message"},
		{"400 invalid_blocks", false, 400, "invalid_blocks", true, "payload", "invalid_blocks"},
		{"400 no_text", false, 400, "no_text", true, "payload", "no_text"},
		{"400 too_many_attachments", false, 400, "too_many_attachments", true, "payload", "too_many_attachments"},
		{"413", false, 413, "", true, "payload", "413"},
		{"400 user_not_found", false, 400, "user_not_found", false, "config", "user no longer exists"},
		{"403 action_prohibited", false, 403, "action_prohibited", false, "config", "workspace restriction"},
		{"403 invalid_token", false, 403, "invalid_token", false, "auth", "create a new webhook"},
		{"401", false, 401, "", false, "auth", "401"},
		{"404 no_service", false, 404, "no_service", false, "auth", "slack webhook answered 404 no_service: the webhook URL was revoked or is wrong"},
		{"404 channel_not_found", false, 404, "channel_not_found", false, "config", "channel was deleted"},
		{"410 channel_is_archived", false, 410, "channel_is_archived", false, "config", "archived"},
		{"408 from a proxy", false, 408, "request timeout", false, "timeout", "408"},
		{"425", false, 425, "", false, "http_4xx", "425"},
		{"500 rollup_error", false, 500, "rollup_error", false, "http_5xx", "rollup_error"},
		{"bot invalid_blocks", true, 0, "invalid_blocks", true, "payload", "chat.postMessage: invalid_blocks"},
		{"bot msg_too_long", true, 0, "msg_too_long", true, "payload", "msg_too_long"},
		{"bot no_text", true, 0, "no_text", true, "payload", "no_text"},
		{"bot too_many_attachments", true, 0, "too_many_attachments", true, "payload", "too_many_attachments"},
		{"bot invalid_auth", true, 0, "invalid_auth", false, "auth", "check bot_token"},
		{"bot token_revoked", true, 0, "token_revoked", false, "auth", "revoked"},
		{"bot not_in_channel", true, 0, "not_in_channel", false, "config", "invite it"},
		{"bot channel_not_found", true, 0, "channel_not_found", false, "config", "sinks.slack.channel"},
		{"bot is_archived", true, 0, "is_archived", false, "config", "archived"},
		{"bot restricted_action_read_only_channel", true, 0, "restricted_action_read_only_channel", false, "config", "restriction"},
		{"bot internal_error", true, 0, "internal_error", false, "api_transient", "internal_error"},
		{"bot unknown error", true, 0, "cannot_reply_to_message", true, "api_error", "cannot_reply_to_message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request, _ []byte) {
				if tt.bot {
					fmt.Fprintf(w, `{"ok":false,"error":%q}`, tt.body)
					return
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			cfg := webhookConfig(f.URL)
			if tt.bot {
				cfg = botConfig(f.URL)
			}
			s := newSink(t, cfg, zerolog.Nop())
			r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule)))
			if r.OK() || r.Cause == nil {
				t.Fatalf("Send() = %v, want a failure", r)
			}
			if r.Cause.Permanent != tt.permanent || r.Cause.Reason != tt.reason {
				t.Errorf("Send() = %v (permanent %v, reason %q), want permanent %v, reason %q",
					r, r.Cause.Permanent, r.Cause.Reason, tt.permanent, tt.reason)
			}
			if !strings.Contains(r.Cause.Err.Error(), tt.errHas) {
				t.Errorf("Send() = %q, want it to contain %q", r.Cause.Err, tt.errHas)
			}
		})
	}
}

// TestSinkWideErrorsKeepAlerts runs the dispatcher against a Slack that
// refuses every message for a while (webhook revoked, channel archived, a
// workspace restriction, a proxy timing out): nothing is dead-lettered, the
// alerts go out once Slack accepts again, and the dispatcher logs the cause
// with its fix once, not once per attempt.
func TestSinkWideErrorsKeepAlerts(t *testing.T) {
	tests := []struct {
		status int
		body   string
		logHas string
	}{
		{404, "no_service", "slack webhook answered 404 no_service: the webhook URL was revoked or is wrong"},
		{410, "channel_is_archived", "slack webhook answered 410 channel_is_archived: the channel is archived"},
		{403, "action_prohibited", "slack webhook answered 403 action_prohibited: a workspace restriction"},
		{408, "request timeout", "slack webhook answered 408 request timeout"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, " ", tt.body), func(t *testing.T) {
			const refusals = 4
			f := sinkstest.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
				if n < refusals {
					w.WriteHeader(tt.status)
					io.WriteString(w, tt.body)
					return
				}
				io.WriteString(w, "ok")
			})
			var logs syncBuffer
			s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
			ob := sinkstest.NewOutbox()
			for i := range 5 {
				ob.PutAlert("slack", sinkstest.FalcoAlert(i, fmt.Sprintf("img-%d:1", i), rule))
			}
			run(t, s, ob, dispatcherConfig(), zerolog.New(&logs), func() bool {
				return ob.Acked("slack")+len(ob.DeadLetters("slack")) == 5
			})
			if dead := ob.DeadLetters("slack"); len(dead) != 0 {
				t.Fatalf("dead letters = %d (%q), want 0: the answer concerns every message, not one alert", len(dead), dead[0].Reason)
			}
			if got := len(f.Requests()); got != refusals+5 {
				t.Errorf("requests = %d, want %d (%d refused, then one message per image)", got, refusals+5, refusals)
			}
			if n := strings.Count(logs.String(), tt.logHas); n != 1 {
				t.Errorf("log lines with %q = %d, want 1:\n%s", tt.logHas, n, logs.String())
			}
		})
	}
}

// TestSendReportsOnlyFailedGroups checks which alerts a Send reports as not
// posted. A group refused for its payload does not stop the others; a
// transient failure stops the batch and reports the groups not posted (and
// any refused before), never the ones Slack accepted.
func TestSendReportsOnlyFailedGroups(t *testing.T) {
	// Groups by (image, rule), in order: bad [0 2], redis [1 4], postgres [3], mysql [5].
	batch := func(t *testing.T) []sinks.Item {
		return items(t,
			sinkstest.FalcoAlert(0, "nginx:1.27", "BADRULE"),
			sinkstest.FalcoAlert(1, "redis:7", rule),
			sinkstest.FalcoAlert(2, "nginx:1.27", "BADRULE"),
			sinkstest.FalcoAlert(3, "postgres:17", rule),
			sinkstest.FalcoAlert(4, "redis:7", rule),
			sinkstest.FalcoAlert(5, "mysql:8", rule))
	}
	tests := []struct {
		name      string
		fail      map[string]int // body substring -> HTTP status
		failed    string
		permanent bool
		requests  int
	}{
		{"one group refused", map[string]int{"BADRULE": 400}, "[0 2]", true, 4},
		{"transient in the middle", map[string]int{"postgres": 500}, "[3 5]", false, 3},
		{"refused then transient", map[string]int{"BADRULE": 400, "postgres": 500}, "[0 2 3 5]", false, 3},
		{"refused then rate limited", map[string]int{"BADRULE": 400, "redis": 429}, "[0 1 2 3 4 5]", false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request, body []byte) {
				for sub, status := range tt.fail {
					if bytes.Contains(body, []byte(sub)) {
						w.WriteHeader(status)
						io.WriteString(w, "invalid_blocks")
						return
					}
				}
				io.WriteString(w, "ok")
			})
			s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
			r := s.Send(context.Background(), batch(t))
			failed := append(r.Indexes(sinks.StatusPermanent), r.Indexes(sinks.StatusRetry)...)
			slices.Sort(failed)
			permanent := r.Cause != nil && r.Cause.Permanent
			if fmt.Sprint(failed) != tt.failed || permanent != tt.permanent || r.Count(sinks.StatusDeferred)+r.Count(sinks.StatusHeld) != 0 {
				t.Errorf("Send() = %v: failed %v, permanent %v; want failed %s, permanent %v",
					r, failed, permanent, tt.failed, tt.permanent)
			}
			if got := len(f.Requests()); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

// TestRefusedGroupKeepsOthersGrouped is the dispatcher's view of
// TestSendReportsOnlyFailedGroups: one refused group is dead-lettered and
// the other groups still go out as one message each, not one per alert.
func TestRefusedGroupKeepsOthersGrouped(t *testing.T) {
	f := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request, body []byte) {
		if bytes.Contains(body, []byte("BADRULE")) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "invalid_payload")
			return
		}
		io.WriteString(w, "ok")
	})
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	ob := sinkstest.NewOutbox()
	ob.PutAlert("slack", sinkstest.FalcoAlert(0, "nginx:1.27", "BADRULE"))
	for i := 1; i <= 40; i++ {
		img := "redis:7"
		if i%2 == 0 {
			img = "nginx:1.27"
		}
		ob.PutAlert("slack", sinkstest.FalcoAlert(i, img, rule))
	}
	run(t, s, ob, dispatcherConfig(), zerolog.Nop(), func() bool {
		return ob.Acked("slack") == 40 && len(ob.DeadLetters("slack")) == 1
	})
	if got := len(f.Requests()); got != 3 {
		t.Errorf("requests = %d, want 3 (one per (image, rule) group)", got)
	}
}

// TestFallbackTextEscaped checks the top-level text, which Slack parses as
// mrkdwn and shows in notifications: a rule or image from the event must
// not inject a mention, in the full message or in a digest.
func TestFallbackTextEscaped(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	const evil = "<!channel> shell & <@U123>"
	for i := range 2 { // a full message, then a digest
		a := sinkstest.FalcoAlert(i, "evil<!here>:1", evil)
		if r := s.Send(context.Background(), items(t, a)); !r.OK() {
			t.Fatalf("Send(%d) = %v", i, r)
		}
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("messages = %d, want 2 (full message, digest)", len(reqs))
	}
	for i, r := range reqs {
		var m struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		for _, raw := range []string{"<!channel>", "<@U123>", "<!here>", " & "} {
			if strings.Contains(m.Text, raw) {
				t.Errorf("message %d: text = %q, carries %q unescaped", i, m.Text, raw)
			}
		}
		if !strings.Contains(m.Text, "&lt;!channel&gt; shell &amp; &lt;@U123&gt;") {
			t.Errorf("message %d: text = %q, want the rule escaped as in the blocks", i, m.Text)
		}
	}
}

func TestMinPriority(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	low := sinkstest.FalcoAlert(1, "nginx:1.27", rule)
	low.Priority = scorer.PriorityNotice
	if r := s.Send(context.Background(), items(t, low)); !r.OK() {
		t.Fatalf("Send(below min priority) = %v, want all delivered", r)
	}
	if n := len(f.Requests()); n != 0 {
		t.Errorf("messages = %d, want 0 for a Notice alert with min_priority Warning", n)
	}
}

func TestBotThreadsFollowUps(t *testing.T) {
	const token = "xoxb-BOTTOKEN-secret-77"
	f := sinkstest.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request, _ []byte) {
		fmt.Fprintf(w, `{"ok":true,"ts":"1700000000.%06d"}`, n)
	})
	cfg := slack.DefaultConfig()
	cfg.BotToken, cfg.Channel, cfg.APIURL = secret.New(token), "C0SECURITY", f.URL+"/api/chat.postMessage"
	cfg.MinInterval = 10 * time.Millisecond
	cfg.DigestInterval = 0
	s := newSink(t, cfg, zerolog.Nop())
	ctx := context.Background()
	for i := range 3 {
		if r := s.Send(ctx, items(t, sinkstest.FalcoAlert(i, "nginx:1.27", rule))); !r.OK() {
			t.Fatalf("Send(%d) = %v", i, r)
		}
	}
	reqs := f.Requests()
	if len(reqs) != 3 {
		t.Fatalf("messages = %d, want 3", len(reqs))
	}
	for i, r := range reqs {
		var m struct {
			Channel  string `json:"channel"`
			ThreadTS string `json:"thread_ts"`
		}
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		wantThread := ""
		if i > 0 {
			wantThread = "1700000000.000000"
		}
		if m.Channel != "C0SECURITY" || m.ThreadTS != wantThread {
			t.Errorf("message %d: channel %q thread_ts %q, want C0SECURITY and %q", i, m.Channel, m.ThreadTS, wantThread)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("message %d: Authorization = %q, want the bearer token", i, got)
		}
	}
}

func TestSlackLimits(t *testing.T) {
	f := sinkstest.NewReceiver(t, nil)
	s := newSink(t, webhookConfig(f.URL), zerolog.Nop())
	a := sinkstest.FalcoAlert(1, "nginx:1.27", rule)
	a.Event.Output = strings.Repeat("very long output <&> ", 1000)
	for range 200 {
		a.Explain.Transitions = append(a.Explain.Transitions, scorer.Transition{
			History: []string{strings.Repeat("h", 500)}, Symbol: "x", Probability: 0.5, HistorySeen: 3})
	}
	if r := s.Send(context.Background(), items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	var m struct {
		Attachments []struct {
			Blocks []struct {
				Text *struct{ Text string } `json:"text"`
			} `json:"blocks"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(f.Requests()[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	truncated := false
	for _, b := range m.Attachments[0].Blocks {
		if b.Text == nil {
			continue
		}
		if n := len([]rune(b.Text.Text)); n > 3000 {
			t.Errorf("section text of %d characters, want <= 3000", n)
		}
		truncated = truncated || strings.Contains(b.Text.Text, "(truncated)")
	}
	if len(m.Attachments[0].Blocks) > 50 {
		t.Errorf("blocks = %d, want <= 50", len(m.Attachments[0].Blocks))
	}
	if !truncated {
		t.Error("no truncation marker in an oversized message")
	}
}

// TestSecretsNeverLeak checks captured logs, errors and dead-letter reasons
// for the webhook URL and the bot token.
func TestSecretsNeverLeak(t *testing.T) {
	const token = "xoxb-LEAKY-token-99"
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // connection refused: *url.Error, which prints its URL
	echo := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request, _ []byte) {
		w.WriteHeader(http.StatusBadGateway) // a hostile proxy echoing credentials
		io.WriteString(w, r.Header.Get("Authorization")+" "+r.URL.String())
	})
	// reason: redacting an error drops its wrapping; what the dispatcher
	// does with the failure is in the Failure and must survive.
	tests := []struct {
		name   string
		cfg    func() slack.Config
		leak   []string
		reason string
	}{
		{"webhook refused", func() slack.Config { return webhookConfig(closedURL) }, []string{webhookPath, "xoxWEBHOOKSECRET42"}, "unavailable"},
		{"webhook echoed", func() slack.Config { return webhookConfig(echo.URL) }, []string{"xoxWEBHOOKSECRET42"}, "http_5xx"},
		{"bot token echoed", func() slack.Config {
			c := slack.DefaultConfig()
			c.BotToken, c.Channel, c.APIURL = secret.New(token), "C1", echo.URL+"/api"
			c.MinInterval = 10 * time.Millisecond
			return c
		}, []string{token}, "http_5xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			log := zerolog.New(&logs).Level(zerolog.DebugLevel)
			cfg := tt.cfg()
			s := newSink(t, cfg, log)
			sent := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule)))
			if sent.OK() || sent.Cause == nil {
				t.Fatalf("Send() = %v, want a failure", sent)
			}
			if sent.Cause.Permanent || sent.Cause.Reason != tt.reason {
				t.Errorf("Send() = %v, want transient %s", sent, tt.reason)
			}
			ob := sinkstest.NewOutbox()
			ob.PutAlertAt("slack", sinkstest.FalcoAlert(2, "nginx:1.27", rule), time.Now().Add(-time.Hour))
			dc := dispatcherConfig()
			dc.MaxRetryTime = time.Minute // already expired: dead-letters after one try
			run(t, s, ob, dc, log, func() bool { return len(ob.DeadLetters("slack")) == 1 })
			all := logs.String() + "\n" + sent.Cause.Err.Error() + "\n" + ob.DeadLetters("slack")[0].Reason +
				"\n" + fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)
			for _, l := range tt.leak {
				if strings.Contains(all, l) {
					t.Errorf("secret %q leaked into logs, errors or config output:\n%s", l, all)
				}
			}
			if !strings.Contains(all, "delivery failing") && !strings.Contains(all, "dead letters") {
				t.Errorf("captured nothing to check:\n%s", all)
			}
		})
	}
}

// syncBuffer captures output written concurrently.
type syncBuffer = scorertest.SyncBuffer

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*slack.Config)
		want   string
	}{
		{"webhook", func(c *slack.Config) { c.WebhookURL = secret.New("https://hooks.slack.com/services/x") }, ""},
		{"bot", func(c *slack.Config) { c.BotToken, c.Channel = secret.New("xoxb"), "C1" }, ""},
		{"nothing", func(*slack.Config) {}, "webhook_url: empty"},
		{"both", func(c *slack.Config) { c.WebhookURLEnv, c.BotTokenEnv = "A", "B" }, "not both"},
		{"bot without channel", func(c *slack.Config) { c.BotTokenFile = "/t" }, "channel: empty"},
		{"bad url", func(c *slack.Config) { c.WebhookURL = secret.New("ftp://secret-path") }, "webhook_url: not an http(s) URL"},
		{"zero interval", func(c *slack.Config) { c.WebhookURLEnv, c.MinInterval = "A", 0 }, "min_interval:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := slack.DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret-path") {
				t.Errorf("Validate() = %v, leaks the URL", err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	c := slack.DefaultConfig()
	in := "webhook_url: https://hooks.slack.com/services/T/B/yamlSECRET\nmin_priority: error\ndigest_window: 2m\nmin_interval: 1500ms\n"
	if err := yaml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatalf("yaml.Unmarshal() = %v", err)
	}
	if c.WebhookURL.Value() != "https://hooks.slack.com/services/T/B/yamlSECRET" || c.MinPriority != scorer.PriorityError ||
		c.DigestWindow != 2*time.Minute || c.MinInterval != 1500*time.Millisecond {
		t.Errorf("decoded = %+v, want the YAML values", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	out, err := yaml.Marshal(c)
	if err != nil || strings.Contains(string(out), "yamlSECRET") {
		t.Errorf("yaml.Marshal(config) = %s, %v; want the URL redacted", out, err)
	}
}

// TestPacingStaysWithinSendTimeout: a batch of more groups than the rate
// limit lets through before the dispatcher's send timeout is posted over
// several Sends, each ending before its deadline with the rest deferred;
// the dispatcher neither counts failures nor backs off, and every group is
// posted once.
func TestPacingStaysWithinSendTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sinkstest.NewMemReceiver(nil)
		cfg := webhookConfig(memSlackURL)
		cfg.MinInterval = 100 * time.Millisecond
		cfg.Timeout = 200 * time.Millisecond
		s := newMemSink(t, f, cfg, zerolog.Nop())
		ob := sinkstest.NewOutbox()
		const groups = 8 // 8 × 100 ms of pacing against a 450 ms send timeout
		for i := range groups {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, fmt.Sprintf("img-%d:1", i), rule))
		}
		dc := dispatcherConfig()
		dc.SendTimeout = 450 * time.Millisecond
		reg := prometheus.NewRegistry()
		var logs bytes.Buffer
		_, stop := startDispatcher(t, s, ob, dc, zerolog.New(&logs), reg)
		deadline := time.Now().Add(10 * time.Second)
		for ob.Acked("slack") < groups && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if got := ob.Acked("slack"); got != groups {
			t.Fatalf("acked %d, want %d", got, groups)
		}
		if got := len(f.Requests()); got != groups {
			t.Errorf("Slack requests = %d, want %d (each group once)", got, groups)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			switch mf.GetName() {
			case "falco_scorer_sink_failed_total", "falco_scorer_sink_retried_total":
				for _, mm := range mf.GetMetric() {
					if v := mm.GetCounter().GetValue(); v != 0 {
						t.Errorf("%s = %v, want 0 (deferring is not failing)", mf.GetName(), v)
					}
				}
			}
		}
		if strings.Contains(logs.String(), "delivery failing") {
			t.Errorf("pacing was logged as a failure:\n%s", logs.String())
		}
	})
}

// TestRefusedGroupThenDeferredIsDeadLettered: the first group of a batch is
// refused for its payload and the next does not fit before the send
// deadline. Deferring needs a post that went through first, so the refused
// alert is still dead-lettered and the other one delivered, rather than
// the batch coming back as one transient failure and being reposted until
// max_retry_time.
func TestRefusedGroupThenDeferredIsDeadLettered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sinkstest.NewMemReceiver(func(_ int, w http.ResponseWriter, _ *http.Request, body []byte) {
			if strings.Contains(string(body), "img-0") {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, "invalid_blocks")
				return
			}
			io.WriteString(w, "ok")
		})
		cfg := webhookConfig(memSlackURL)
		cfg.MinInterval = 100 * time.Millisecond
		cfg.Timeout = 200 * time.Millisecond
		s := newMemSink(t, f, cfg, zerolog.Nop())
		ob := sinkstest.NewOutbox()
		for i := range 2 {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, fmt.Sprintf("img-%d:1", i), rule))
		}
		dc := dispatcherConfig()
		dc.SendTimeout = 250 * time.Millisecond
		run(t, s, ob, dc, zerolog.Nop(), func() bool {
			return len(ob.DeadLetters("slack")) == 1 && ob.Acked("slack") == 1
		})
	})
}

// TestSteadyStreamDigestsOncePerInterval: a steady stream of one (image,
// rule) gets its first message, then at most one digest per
// digest_interval, each counting every alert so far; the follow-ups wait
// in the outbox (unconfirmed) until their digest is posted, and another
// incident in between is not held up.
func TestSteadyStreamDigestsOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := webhookConfig(memSlackURL)
		cfg.DigestInterval = 300 * time.Millisecond
		dc := dispatcherConfig()
		dc.PollInterval = 20 * time.Millisecond
		f, ob, d, stop := startMemRig(t, cfg, dc)
		const n = 60 // one alert every 25 ms for 1.5 s
		start := time.Now()
		var otherPosted time.Duration
		for i := range n {
			ob.PutAlert("slack", sinkstest.FalcoAlert(i, "nginx:1.27", rule))
			if i == n/2 {
				ob.PutAlert("slack", sinkstest.FalcoAlert(1000, "redis:7", rule))
			}
			d.Wake()
			time.Sleep(25 * time.Millisecond)
			if otherPosted == 0 {
				for _, r := range f.Requests() {
					if strings.Contains(string(r.Body), "redis:7") {
						otherPosted = time.Since(start)
					}
				}
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for ob.Acked("slack") < n+1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if got := ob.Acked("slack"); got != n+1 {
			t.Fatalf("acked %d of %d alerts", got, n+1)
		}
		var nginx []sinkstest.Request
		for _, r := range f.Requests() {
			if strings.Contains(string(r.Body), "nginx:1.27") {
				nginx = append(nginx, r)
			}
		}
		// 1.5 s of stream at one digest per 300 ms: the first message and about
		// five digests (each batch would have posted ~60).
		if len(nginx) < 2 || len(nginx) > 8 {
			t.Errorf("nginx incident: %d messages for %d alerts, want the first and about 5 digests", len(nginx), n)
		}
		for i := 2; i < len(nginx); i++ { // digests (after the first one, which may follow the full message at once)
			if gap := nginx[i].At.Sub(nginx[i-1].At); gap < cfg.DigestInterval {
				t.Errorf("digest %d came %s after the previous message, want >= digest_interval", i, gap)
			}
		}
		if last := string(nginx[len(nginx)-1].Body); !strings.Contains(last, fmt.Sprintf("and %d more like this", n-1)) {
			t.Errorf("last digest does not count all %d follow-ups: %.300s", n-1, last)
		}
		if otherPosted == 0 || otherPosted > time.Second+time.Duration(n/2)*25*time.Millisecond {
			t.Errorf("the other incident was posted after %s, want soon after it arrived", otherPosted)
		}
	})
}
