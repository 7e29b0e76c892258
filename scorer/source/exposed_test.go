package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
)

// TestExposedIngestRefused: an ingest listener beyond loopback with neither
// a token nor mTLS used to start with a warning (the container image's
// built-in config did exactly that on 0.0.0.0:2801); anyone who reaches it
// can then feed the baselines. It is refused unless allow_unauthenticated
// says the network in front takes care of it.
func TestExposedIngestRefused(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*HTTPConfig)
		want   string // "" for valid
	}{
		{"all interfaces", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801" }, "allow_unauthenticated"},
		{"empty host", func(c *HTTPConfig) { c.Listen = ":2801" }, "allow_unauthenticated"},
		{"ipv6 any", func(c *HTTPConfig) { c.Listen = "[::]:2801" }, "allow_unauthenticated"},
		{"node address", func(c *HTTPConfig) { c.Listen = "10.0.0.5:2801" }, "allow_unauthenticated"},
		{"allowed", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801"; c.AllowUnauthenticated = true }, ""},
		{"token", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801"; c.Token = secret.New("t") }, ""},
		{"token file", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801"; c.TokenFile = "/run/secrets/t" }, ""},
		{"token env", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801"; c.TokenEnv = "T" }, ""},
		{"mtls", func(c *HTTPConfig) {
			c.Listen = "0.0.0.0:2801"
			c.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem", ClientCAFile: "ca.pem"}
		}, ""},
		{"tls without client ca", func(c *HTTPConfig) {
			c.Listen = "0.0.0.0:2801"
			c.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}
		}, "allow_unauthenticated"},
		{"loopback", func(c *HTTPConfig) { c.Listen = "127.0.0.1:2801" }, ""},
		{"ipv6 loopback", func(c *HTTPConfig) { c.Listen = "[::1]:2801" }, ""},
		{"localhost", func(c *HTTPConfig) { c.Listen = "localhost:2801" }, ""},
		{"disabled", func(c *HTTPConfig) { c.Listen = "0.0.0.0:2801"; c.Enabled = false }, ""},
		// A name is only known once resolved: Run checks the address.
		{"host name", func(c *HTTPConfig) { c.Listen = "scorer.example:2801" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultHTTPConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "listen:")) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestExposedIngestRefusedAtStart: a token file that resolves empty leaves
// the listener as open as no token at all (NewHTTP refuses it), and Run
// checks the address it actually listens on (a host name may resolve
// beyond loopback).
func TestExposedIngestRefusedAtStart(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testHTTPConfig()
	c.Listen = "0.0.0.0:0"
	c.TokenFile = empty
	if _, err := NewHTTP(c, &recorder{}, nopLog(), nil); err == nil || !strings.Contains(err.Error(), "allow_unauthenticated") {
		t.Errorf("NewHTTP with an empty token file on 0.0.0.0 = %v, want an allow_unauthenticated error", err)
	}

	c = testHTTPConfig()
	c.Listen = "0.0.0.0:0"
	c.AllowUnauthenticated = true
	h, err := NewHTTP(c, &recorder{}, nopLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.AllowUnauthenticated = false // as if a name had resolved to this address
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := h.Run(ctx); err == nil || !strings.Contains(err.Error(), "allow_unauthenticated") {
		t.Errorf("Run on 0.0.0.0 without token = %v, want an allow_unauthenticated error", err)
	}
	if h.Ready() {
		t.Errorf("Ready() after a refused start = true")
	}
}
