package webhook_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	secretPath = "/hook/AbCdEfGhSECRET"
	token      = "bearer-TOKEN-0042"
)

func newSink(t *testing.T, base string, log zerolog.Logger) *webhook.Sink {
	t.Helper()
	cfg := webhook.DefaultConfig()
	cfg.URL = secret.New(base + secretPath)
	cfg.BearerToken = secret.New(token)
	cfg.Headers = map[string]string{"X-Team": "secops"}
	s, err := webhook.New(cfg, log)
	if err != nil {
		t.Fatalf("webhook.New() = %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func items(t *testing.T, alerts ...*scorer.Alert) []sinks.Item { return sinkstest.Items(t, alerts...) }

func TestFalcoFormatBody(t *testing.T) {
	srv := sinkstest.NewReceiver(t, nil)
	s := newSink(t, srv.URL, zerolog.Nop())
	a := sinkstest.FalcoAlert(1, "nginx:1.27", "Terminal shell in container")
	if r := s.Send(context.Background(), items(t, a)); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	r := srv.Requests()[0]
	if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Team") != "secops" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v, want bearer token, X-Team and JSON content type", r.Header)
	}
	// Still a Falco event: falcosidekick and falco-talon read it unchanged.
	ev, err := scorer.DecodeJSON(r.Body)
	if err != nil {
		t.Fatalf("DecodeJSON(body) = %v, want a valid Falco event", err)
	}
	want := map[string]string{
		"scorer.verdict": "anomalous", "scorer.band": "high", "scorer.score": "17.25", "scorer.threshold": "9.5",
		"scorer.alert_id": a.ID, "scorer.image": "nginx:1.27", "scorer.kind": "falco", "scorer.falco_priority": "Notice",
		"proc.name": "bash", "k8s.ns.name": "shop",
	}
	for k, v := range want {
		if ev.Fields.Value(k) != v {
			t.Errorf("output_fields[%q] = %q, want %q", k, ev.Fields.Value(k), v)
		}
	}
	if ev.Priority != scorer.PriorityCritical || ev.Rule != a.Event.Rule || ev.Output != a.Event.Output || len(ev.Tags) != 4 {
		t.Errorf("event = priority %v rule %q tags %v, want escalated Critical and the original rule, output, tags", ev.Priority, ev.Rule, ev.Tags)
	}
	scorertest.Golden(t, filepath.Join("testdata", "webhook_body.golden"), scorertest.IndentJSON(t, r.Body), *update, "body")
}

// TestFalcoJSONTreeRoot: an anomaly its process tree raised carries the
// tree's root in output_fields, for a responder downstream (falco-talon)
// to act on; other alerts do not.
func TestFalcoJSONTreeRoot(t *testing.T) {
	a := sinkstest.AnomalyAlert(1, "nginx:1.27")
	for _, tree := range []bool{false, true} {
		if tree {
			a.Subject.TreeRootPID, a.Subject.TreeRoot = 4240, "sh"
		}
		body, err := webhook.FalcoJSON(a)
		if err != nil {
			t.Fatalf("FalcoJSON() = %v", err)
		}
		ev, err := scorer.DecodeJSON(body)
		if err != nil {
			t.Fatalf("DecodeJSON(FalcoJSON()) = %v", err)
		}
		pid, root := ev.Fields.Value(webhook.FieldTreeRootPID), ev.Fields.Value(webhook.FieldTreeRoot)
		if tree && (pid != "4240" || root != "sh") || !tree && (pid != "" || root != "") {
			t.Errorf("tree %v: %s = %q, %s = %q", tree, webhook.FieldTreeRootPID, pid, webhook.FieldTreeRoot, root)
		}
	}
}

// TestOutcomes checks how each answer is classified. Only answers about the
// request body are permanent (dead-lettered); auth, config and timeout
// answers concern every alert, so they stay retryable and the alerts go out
// once the receiver is fixed.
func TestOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		permanent  bool
		wantAfter  time.Duration
		reason     string
		errHas     string
	}{
		{"429 with Retry-After", http.StatusTooManyRequests, "2", false, 2 * time.Second, "http_429", "429"},
		{"503", http.StatusServiceUnavailable, "", false, 0, "http_5xx", "503"},
		{"400 permanent", http.StatusBadRequest, "", true, 0, "payload", "rejected this alert"},
		{"413 permanent", http.StatusRequestEntityTooLarge, "", true, 0, "payload", "413"},
		{"415 permanent", http.StatusUnsupportedMediaType, "", true, 0, "payload", "415"},
		{"422 permanent", http.StatusUnprocessableEntity, "", true, 0, "payload", "422"},
		{"401 token rotated", http.StatusUnauthorized, "", false, 0, "auth", "check bearer_token"},
		{"403 forbidden", http.StatusForbidden, "", false, 0, "auth", "check bearer_token"},
		{"404 receiver redeploying", http.StatusNotFound, "", false, 0, "config", "check url"},
		{"405 wrong path", http.StatusMethodNotAllowed, "", false, 0, "config", "check url"},
		{"408 proxy timeout", http.StatusRequestTimeout, "", false, 0, "timeout", "408"},
		{"425 too early", http.StatusTooEarly, "", false, 0, "http_4xx", "425"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The first alert is accepted, the second fails: a partial error.
			srv := sinkstest.NewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request, _ []byte) {
				if n == 0 {
					return
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			})
			s := newSink(t, srv.URL, zerolog.Nop())
			r := s.Send(context.Background(), items(t,
				sinkstest.FalcoAlert(1, "a", "r"), sinkstest.FalcoAlert(2, "a", "r"), sinkstest.FalcoAlert(3, "a", "r")))
			failed := append(r.Indexes(sinks.StatusRetry), r.Indexes(sinks.StatusPermanent)...)
			if !r.PerItem || fmt.Sprint(failed) != "[1 2]" || r.Count(sinks.StatusDelivered) != 1 || r.Cause == nil {
				t.Fatalf("Send() = %v, want items [1 2] failed one by one", r)
			}
			if r.Cause.Permanent != tt.permanent {
				t.Errorf("Send() = %v: permanent %v, want %v", r, r.Cause.Permanent, tt.permanent)
			}
			if r.Cause.RetryAfter != tt.wantAfter {
				t.Errorf("Send() = %v: retry after %v, want %v", r, r.Cause.RetryAfter, tt.wantAfter)
			}
			if r.Cause.Reason != tt.reason {
				t.Errorf("Send() = %v: reason %q, want %q", r, r.Cause.Reason, tt.reason)
			}
			if !strings.Contains(r.Cause.Err.Error(), tt.errHas) {
				t.Errorf("Send() = %v, want an error saying %q", r, tt.errHas)
			}
		})
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	echo := sinkstest.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request, _ []byte) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, r.Header.Get("Authorization")+" "+r.URL.Path)
	})
	// Redacting an error drops its wrapping; what the dispatcher does with
	// the failure (the reason, retry) is in the Failure and must survive.
	for name, tt := range map[string]struct{ base, reason string }{
		"refused": {closedURL, "unavailable"},
		"echo":    {echo.URL, "http_5xx"},
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			s := newSink(t, tt.base, zerolog.New(&logs).Level(zerolog.DebugLevel))
			r := s.Send(context.Background(), items(t, sinkstest.FalcoAlert(1, "a", "r")))
			if r.OK() || r.Cause == nil {
				t.Fatalf("Send() = %v, want a failure", r)
			}
			if r.Cause.Permanent || r.Cause.Reason != tt.reason {
				t.Errorf("Send() = %v, want transient %s", r, tt.reason)
			}
			text := r.Cause.Err.Error() + logs.String()
			for _, leak := range []string{"AbCdEfGhSECRET", token} {
				if strings.Contains(text, leak) {
					t.Errorf("secret %q leaked: %s", leak, text)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*webhook.Config)
		want   string
	}{
		{"ok", func(c *webhook.Config) { c.URLEnv = "HOOK" }, ""},
		{"no url", func(*webhook.Config) {}, "url: empty"},
		{"bad url", func(c *webhook.Config) { c.URL = secret.New("nope") }, "url: not an http(s) URL"},
		{"auth header", func(c *webhook.Config) { c.URLEnv, c.Headers = "H", map[string]string{"authorization": "x"} }, "headers:"},
		{"timeout", func(c *webhook.Config) { c.URLEnv, c.Timeout = "H", 0 }, "timeout:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := webhook.DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
