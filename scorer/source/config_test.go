package source

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAML(t *testing.T) {
	in := `
http:
  listen: "0.0.0.0:2801"
  read_header_timeout: 2s
  max_body_bytes: 2097152
  token: hunter2
  tls:
    cert_file: /c.pem
    key_file: /k.pem
grpc:
  enabled: true
  unix_socket: unix:///var/run/falco.sock
  backoff_max: 1m30s
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.read_header_timeout", cfg.HTTP.ReadHeaderTimeout, 2 * time.Second},
		{"http.read_timeout (default kept)", cfg.HTTP.ReadTimeout, 30 * time.Second},
		{"http.max_body_bytes", cfg.HTTP.MaxBodyBytes, int64(2 << 20)},
		{"http.token", cfg.HTTP.Token.Value(), "hunter2"},
		{"grpc.backoff_max", cfg.GRPC.BackoffMax, 90 * time.Second},
		{"grpc.enabled", cfg.GRPC.Enabled, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s := fmt.Sprintf("%v %+v", cfg.HTTP, cfg); strings.Contains(s, "hunter2") {
		t.Errorf("formatted config leaks the token: %s", s)
	}
	out, _ := yaml.Marshal(cfg)
	if strings.Contains(string(out), "hunter2") {
		t.Errorf("marshalled config leaks the token")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad listen", func(c *Config) { c.HTTP.Listen = "2801" }, "http.listen:"},
		{"zero body", func(c *Config) { c.HTTP.MaxBodyBytes = 0 }, "http.max_body_bytes:"},
		{"zero header timeout", func(c *Config) { c.HTTP.ReadHeaderTimeout = 0 }, "http.read_header_timeout:"},
		{"cert without key", func(c *Config) { c.HTTP.TLS.CertFile = "/c" }, "http.tls:"},
		{"client ca without cert", func(c *Config) { c.HTTP.TLS.ClientCAFile = "/ca" }, "http.tls.client_ca_file:"},
		{"grpc hostname without certs", func(c *Config) { c.GRPC.Hostname = "falco"; c.GRPC.Port = 5060 }, "grpc.cert_file:"},
		{"grpc hostname without port", func(c *Config) {
			c.GRPC.Hostname, c.GRPC.CertFile, c.GRPC.KeyFile, c.GRPC.CAFile = "falco", "/c", "/k", "/ca"
		}, "grpc.port:"},
		{"grpc bad socket", func(c *Config) { c.GRPC.UnixSocket = "/run/falco/falco.sock" }, "grpc.unix_socket:"},
		{"grpc keepalive too short", func(c *Config) { c.GRPC.KeepaliveTime = time.Second }, "grpc.keepalive_time:"},
		{"grpc backoff max below initial", func(c *Config) { c.GRPC.BackoffMax = time.Millisecond }, "grpc.backoff_max:"},
		{"grpc batch", func(c *Config) { c.GRPC.BatchSize = 0 }, "grpc.batch_size:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}
