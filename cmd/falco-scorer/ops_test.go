package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
