package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/store"
)

// TestAdminListen: with admin.listen set, health, readiness, metrics and
// the admin API are served there and not on the ingest listener, which
// still takes events. On a non-loopback admin listener without a token the
// admin API is off while the rest is served.
func TestAdminListen(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		wantAPI int
	}{
		{"127.0.0.1:0", http.StatusOK},
		{"0.0.0.0:0", http.StatusNotFound},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Admin.Listen = tc.listen
			r := startService(t, cfg, "info")
			addr := r.svc.opsAddr()
			if addr == "" {
				t.Fatal("admin listener has no address once the service is ready")
			}
			_, port, _ := strings.Cut(addr, "]:") // "[::]:port" for 0.0.0.0
			if port == "" {
				_, port, _ = strings.Cut(addr, ":")
			}
			ops := "http://127.0.0.1:" + port + "/"
			for _, c := range []struct {
				url, want string
				code      int
			}{
				{ops + "healthz", "ok", http.StatusOK},
				{ops + "readyz", "ready", http.StatusOK},
				{ops + "metrics", "falco_scorer_", http.StatusOK},
				{ops + "api/v1/baselines", "", tc.wantAPI},
				{r.url + "metrics", "", http.StatusNotFound},
				{r.url + "healthz", "", http.StatusNotFound},
			} {
				resp, err := http.Get(c.url)
				if err != nil {
					t.Fatalf("GET %s: %v", c.url, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.code || !strings.Contains(string(body), c.want) {
					t.Errorf("GET %s = %d %.80q, want %d containing %q", c.url, resp.StatusCode, body, c.code, c.want)
				}
			}
			if code, body, err := post(r.url, falcoAlertJSON(1, "nginx:1.27", "Warning"), false); err != nil || code != http.StatusOK {
				t.Errorf("POST event to the ingest listener = %d %s, %v; want 200", code, body, err)
			}
		})
	}
}

// TestAdminListenInvalid: a malformed admin.listen is a configuration error
// named by its key.
func TestAdminListenInvalid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Admin.Listen = "2802"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin.listen") {
		t.Errorf("Validate() = %v, want an admin.listen error", err)
	}
}

// request sends method to u with the given headers ("Host" sets the
// request's host) and returns the status and body.
func request(t *testing.T, method, u string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// exportOf is a one-image baseline export, as a page would try to plant it.
func exportOf(t *testing.T, img string) []byte {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.InMemory = true
	db, err := store.Open(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutDeltas([]scorer.BaselineDelta{{Image: img, Bucket: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Counts: []byte("c"), Meta: []byte("m")}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := db.Export(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestOpsOnIngestListenerWithIngestToken reproduces the report: with an
// ingest token and no admin token, /api/v1 (import, replay, reset) and
// /metrics answered on the ingest listener without any token, and a
// cross-origin text/plain POST planted a baseline. Now /metrics needs a
// token (the ingest one will do) and the admin API is not served there at
// all: it needs admin.token, or a loopback admin.listen.
func TestOpsOnIngestListenerWithIngestToken(t *testing.T) {
	const tok = "ingest-tok-5a1c"
	cfg := testConfig(t.TempDir())
	cfg.Inputs.HTTP.Token = secret.New(tok)
	r := startService(t, cfg, "info")
	planted := exportOf(t, "evil/planted:1")
	for _, c := range []struct {
		name, method, path string
		hdr                []string
		body               []byte
		want               int
	}{
		{"healthz", "GET", "healthz", nil, nil, http.StatusOK},
		{"readyz", "GET", "readyz", nil, nil, http.StatusOK},
		{"metrics without token", "GET", "metrics", nil, nil, http.StatusUnauthorized},
		{"metrics with a wrong token", "GET", "metrics", []string{"Authorization", "Bearer nope"}, nil, http.StatusUnauthorized},
		{"metrics with the ingest token", "GET", "metrics", []string{"Authorization", "bearer " + tok}, nil, http.StatusOK},
		{"list without token", "GET", "api/v1/baselines", nil, nil, http.StatusNotFound},
		{"list with the ingest token", "GET", "api/v1/baselines", []string{"Authorization", "Bearer " + tok}, nil, http.StatusNotFound},
		{"cross-origin text/plain import", "POST", "api/v1/baselines/import",
			[]string{"Content-Type", "text/plain", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"}, planted, http.StatusNotFound},
		{"import with the ingest token", "POST", "api/v1/baselines/import",
			[]string{"Content-Type", "application/x-ndjson", "Authorization", "Bearer " + tok}, planted, http.StatusNotFound},
		{"replay", "POST", "api/v1/deadletters/replay?sink=stdout", nil, nil, http.StatusNotFound},
		{"reset", "DELETE", "api/v1/baselines?image=x", nil, nil, http.StatusNotFound},
	} {
		if code, body := request(t, c.method, r.url+c.path, c.body, c.hdr...); code != c.want {
			t.Errorf("%s: %s /%s = %d %.100q, want %d", c.name, c.method, c.path, code, body, c.want)
		}
	}
	if infos, err := r.svc.db.Images(); err != nil || len(infos) != 0 {
		t.Errorf("images after the requests = %v, %v; want none", infos, err)
	}
	if code, body, err := post(r.url, falcoAlertJSON(1, "nginx:1.27", "Warning"), false, "Authorization", "Bearer "+tok); err != nil || code != http.StatusOK {
		t.Errorf("POST event with the token = %d %s, %v; want 200", code, body, err)
	}
}

// TestOpsAdminTokenOnIngestListener: with admin.token the admin API is
// served on the ingest listener behind it (not behind the ingest token);
// /metrics takes either token.
func TestOpsAdminTokenOnIngestListener(t *testing.T) {
	const ingest, adm = "ingest-tok-77e0", "admin-tok-19bd"
	cfg := testConfig(t.TempDir())
	cfg.Inputs.HTTP.Token = secret.New(ingest)
	cfg.Admin.Token = secret.New(adm)
	r := startService(t, cfg, "info")
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"metrics", "", http.StatusUnauthorized},
		{"metrics", "Bearer " + ingest, http.StatusOK},
		{"metrics", "BEARER " + adm, http.StatusOK},
		{"api/v1/baselines", "", http.StatusUnauthorized},
		{"api/v1/baselines", "Bearer " + ingest, http.StatusUnauthorized},
		{"api/v1/baselines", "bearer " + adm, http.StatusOK},
	} {
		if code, body := request(t, "GET", r.url+c.path, nil, "Authorization", c.auth); code != c.want {
			t.Errorf("GET /%s with %q = %d %.100q, want %d", c.path, c.auth, code, body, c.want)
		}
	}
}

// TestOpsRefuseForeignHost: a DNS-rebinding page reaches a loopback
// listener under the attacker's host name and is then same-origin; the
// operations endpoints answer only to the listener's names (loopback names
// and addresses, any IP literal, the listen host, admin.allowed_hosts).
// Probes stay open.
func TestOpsRefuseForeignHost(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.AllowedHosts = []string{"Scorer.Internal"}
	r := startService(t, cfg, "info")
	_, port, _ := strings.Cut(r.svc.opsAddr(), ":")
	ops := "http://127.0.0.1:" + port + "/"
	planted := exportOf(t, "evil/planted:1")
	for _, c := range []struct {
		method, path, host string
		hdr                []string
		want               int
	}{
		{"GET", "api/v1/baselines", "rebind.evil.example:" + port, nil, http.StatusForbidden},
		{"GET", "metrics", "rebind.evil.example:" + port, nil, http.StatusForbidden},
		{"POST", "api/v1/baselines/import", "rebind.evil.example:" + port, []string{"Content-Type", "application/x-ndjson"}, http.StatusForbidden},
		{"GET", "healthz", "rebind.evil.example:" + port, nil, http.StatusOK},
		{"GET", "readyz", "rebind.evil.example:" + port, nil, http.StatusOK},
		{"GET", "api/v1/baselines", "localhost:" + port, nil, http.StatusOK},
		{"GET", "api/v1/baselines", "[::1]:" + port, nil, http.StatusOK},
		{"GET", "api/v1/baselines", "10.1.2.3:" + port, nil, http.StatusOK}, // an IP literal cannot be rebound
		{"GET", "api/v1/baselines", "scorer.internal:" + port, nil, http.StatusOK},
		{"GET", "metrics", "127.0.0.1:" + port, nil, http.StatusOK},
		// Same host, but a page's POST: refused by Origin, and by type.
		{"POST", "api/v1/baselines/import", "127.0.0.1:" + port, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"POST", "api/v1/baselines/import", "127.0.0.1:" + port, []string{"Content-Type", "application/x-ndjson", "Origin", "http://evil.example"}, http.StatusForbidden},
	} {
		if code, body := request(t, c.method, ops+c.path, planted, append([]string{"Host", c.host}, c.hdr...)...); code != c.want {
			t.Errorf("%s /%s with Host %s = %d %.100q, want %d", c.method, c.path, c.host, code, body, c.want)
		}
	}
	if infos, err := r.svc.db.Images(); err != nil || len(infos) != 0 {
		t.Errorf("images after the refused requests = %v, %v; want none", infos, err)
	}
	// The operator's own import still works.
	if code, body := request(t, "POST", ops+"api/v1/baselines/import", planted, "Content-Type", "application/x-ndjson"); code != http.StatusOK {
		t.Errorf("import from a CLI = %d %s, want 200", code, body)
	}
}

func TestHostPolicy(t *testing.T) {
	tests := []struct {
		listen         string
		extra          []string
		tokenProtected bool
		host           string
		want           bool
	}{
		{"127.0.0.1:2801", nil, false, "127.0.0.1", true},
		{"127.0.0.1:2801", nil, false, "::1", true},
		{"127.0.0.1:2801", nil, false, "localhost", true},
		{"127.0.0.1:2801", nil, false, "10.0.0.7", true}, // IP literals cannot be rebound
		{"127.0.0.1:2801", nil, false, "", true},         // HTTP/1.0, not a browser
		{"127.0.0.1:2801", nil, false, "evil.example", false},
		{"127.0.0.1:2801", nil, true, "evil.example", false}, // loopback: checked even with a token
		{"127.0.0.1:2801", []string{"Scorer.Internal."}, false, "scorer.internal", true},
		{"localhost:2801", nil, false, "localhost", true},
		{"scorer.node.example:2802", nil, false, "scorer.node.example", true},
		{"0.0.0.0:2802", nil, false, "evil.example", false},
		{"0.0.0.0:2802", nil, false, "10.1.2.3", true},
		{"0.0.0.0:2802", nil, true, "falco-scorer.falco.svc", true}, // the token protects it
		{"[::]:2802", nil, true, "anything", true},
	}
	for _, tt := range tests {
		check := newHostPolicy(tt.listen, tt.extra).check(tt.tokenProtected)
		if got := check == nil || check(tt.host); got != tt.want {
			t.Errorf("listen %s extra %v token %v: host %q allowed = %v, want %v", tt.listen, tt.extra, tt.tokenProtected, tt.host, got, tt.want)
		}
	}
}

func TestAdminAllowedHostsInvalid(t *testing.T) {
	for _, h := range []string{"", "scorer:2802", "http://scorer", "*.example", "a b"} {
		cfg := DefaultConfig()
		cfg.Admin.AllowedHosts = []string{"ok.example", h}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin.allowed_hosts[1]") {
			t.Errorf("allowed_hosts %q: Validate() = %v, want an admin.allowed_hosts[1] error", h, err)
		}
	}
}

// TestExposedIngestRefused: the container image's built-in config listened
// on 0.0.0.0:2801 without a token and the service started with a warning.
// Now such a config is refused by validation (config check and start)
// unless inputs.http.allow_unauthenticated says a network policy stands
// in front.
func TestExposedIngestRefused(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Inputs.HTTP.Listen = "0.0.0.0:0"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "inputs.http.listen") || !strings.Contains(err.Error(), "allow_unauthenticated") {
		t.Errorf("Validate() = %v, want an inputs.http.listen error naming allow_unauthenticated", err)
	}
	if svc, err := newService(cfg, zerolog.Nop(), io.Discard); err == nil {
		svc.db.Close()
		t.Errorf("newService with ingest on 0.0.0.0 without token = nil error, want a refusal")
	}

	cfg.Inputs.HTTP.AllowUnauthenticated = true
	r := startService(t, cfg, "info")
	if !strings.Contains(r.logs.String(), "ingest listens beyond loopback without a token or mtls") {
		t.Errorf("allowed exposure not logged:\n%s", r.logs.String())
	}
}
