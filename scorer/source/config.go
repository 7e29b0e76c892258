package source

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/secret"
)

// Config holds the settings of the live inputs. The lead decodes it from the
// "inputs" section of the configuration file (field names in errors are
// relative to this struct: "http.listen: ...").
type Config struct {
	HTTP HTTPConfig `yaml:"http"`
	GRPC GRPCConfig `yaml:"grpc"`
}

// DefaultConfig returns the defaults: HTTP on, on loopback; gRPC off (Falco
// 0.44 removed it).
func DefaultConfig() Config {
	return Config{HTTP: DefaultHTTPConfig(), GRPC: DefaultGRPCConfig()}
}

// Validate checks both inputs and names the failing field.
func (c Config) Validate() error {
	var errs []error
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, prefixErr("http.", err))
	}
	if err := c.GRPC.Validate(); err != nil {
		errs = append(errs, prefixErr("grpc.", err))
	}
	return errors.Join(errs...)
}

// HTTPConfig configures the HTTP receiver.
type HTTPConfig struct {
	// Enabled starts the receiver. The lead may also mount /metrics and the
	// health endpoints on it.
	Enabled bool `yaml:"enabled"`
	// Listen is host:port; loopback by default so nothing is exposed unless
	// asked for.
	Listen string `yaml:"listen"`
	// MaxBodyBytes bounds a request body both as received and after gzip
	// decompression (413 beyond).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInFlight bounds concurrent ingest requests (and so the memory held
	// by request bodies); more are answered 429 without reading the body.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxHeaderBytes bounds request headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`

	// ReadHeaderTimeout cuts off slow-loris clients.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end of
	// the response, Accept included.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the graceful shutdown when Run's context ends.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// OverloadWait is how long a request may wait for room when the service
	// is overloaded before it is answered 429 (0: answer at once). Falco's
	// http_output drops an event whatever the answer, so waiting pushes back
	// into Falco's output queue instead; keep it under Falco's
	// output_timeout (2 s by default).
	OverloadWait time.Duration `yaml:"overload_wait"`

	// Token, when set (inline, from TokenFile or from the environment
	// variable named by TokenEnv, in the order of secret.Ref.Resolve), is
	// required as "Authorization: Bearer <token>" on ingest.
	Token     secret.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	TokenEnv  string        `yaml:"token_env"`

	TLS TLSConfig `yaml:"tls"`

	// AllowUnauthenticated lets ingest listen beyond loopback with neither
	// a token nor mTLS (tls.client_ca_file). Without it such a listener is
	// refused at start: whoever reaches it can feed events into the
	// baselines and teach them an attacker's behaviour. Set it only where
	// the network admits nothing but Falco (a NetworkPolicy, a firewall, a
	// container port published on the host's loopback), since Falco's
	// http_output cannot send a bearer token.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
}

// TokenRef is where the ingest token comes from (token, token_file,
// token_env).
func (c HTTPConfig) TokenRef() secret.Ref {
	return secret.Ref{Key: "token", Inline: c.Token, File: c.TokenFile, Env: c.TokenEnv}
}

// exposure reports a listener beyond loopback with neither a token
// (tokenSet) nor mTLS, unless AllowUnauthenticated. Only an IP literal or
// an empty host (all interfaces) is judged here; a host name is judged by
// Run on the address it resolves to.
func (c HTTPConfig) exposure(tokenSet bool) error {
	if !c.Enabled || c.AllowUnauthenticated || tokenSet || c.TLS.ClientCAFile != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil // reported as a listen error
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("listen: %q is beyond loopback and neither token nor tls.client_ca_file (mTLS) is set: "+
		"set one, listen on 127.0.0.1, or set allow_unauthenticated: true if only Falco can reach it", c.Listen)
}

// TLSConfig enables HTTPS (CertFile and KeyFile) and mTLS (ClientCAFile:
// clients must present a certificate signed by it).
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// DefaultHTTPConfig returns the HTTP receiver's defaults.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		Enabled:           true,
		Listen:            "127.0.0.1:2801",
		MaxBodyBytes:      1 << 20,
		MaxInFlight:       64,
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ShutdownTimeout:   10 * time.Second,
		OverloadWait:      500 * time.Millisecond,
	}
}

// Validate checks the HTTP settings. It does not read files.
func (c HTTPConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: want host:port, got %q", c.Listen)
	}
	if c.MaxBodyBytes <= 0 {
		add("max_body_bytes: must be positive, got %d", c.MaxBodyBytes)
	}
	if c.MaxInFlight <= 0 {
		add("max_in_flight: must be positive, got %d", c.MaxInFlight)
	}
	if c.MaxHeaderBytes <= 0 {
		add("max_header_bytes: must be positive, got %d", c.MaxHeaderBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			add("%s: must be positive, got %s", d.name, d.v)
		}
	}
	if c.OverloadWait < 0 || c.OverloadWait > 10*time.Second {
		add("overload_wait: %s not in [0, 10s]", c.OverloadWait)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls: cert_file and key_file must be set together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		add("tls.client_ca_file: needs tls.cert_file and tls.key_file")
	}
	if err := c.TokenRef().Exclusive(); err != nil {
		errs = append(errs, err)
	}
	if err := c.exposure(c.TokenRef().IsSet()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// GRPCConfig configures the gRPC client for Falco ≤ 0.43. With Hostname set
// it connects over TCP with mTLS (CertFile, KeyFile, CAFile) and ignores
// UnixSocket; otherwise it uses UnixSocket.
type GRPCConfig struct {
	Enabled    bool   `yaml:"enabled"`
	UnixSocket string `yaml:"unix_socket"`
	Hostname   string `yaml:"hostname"`
	Port       uint16 `yaml:"port"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`

	// KeepaliveTime is the idle time before a ping; 0 disables pings. Falco's
	// gRPC server (like grpc's defaults) rejects pings more frequent than
	// every 5 minutes while idle, hence the default.
	KeepaliveTime    time.Duration `yaml:"keepalive_time"`
	KeepaliveTimeout time.Duration `yaml:"keepalive_timeout"`
	// BackoffInitial and BackoffMax bound the jittered exponential wait
	// between connection attempts.
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
	// PollInterval is how often a request is sent on the sub stream; Falco
	// sends what is queued after each request, so it bounds the latency of
	// an event that arrives while the stream is idle.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchSize bounds the events accepted together.
	BatchSize int `yaml:"batch_size"`
	// ShutdownTimeout bounds accepting the events already received when
	// Run's context ends.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultGRPCConfig returns the gRPC client's defaults (disabled).
func DefaultGRPCConfig() GRPCConfig {
	return GRPCConfig{
		UnixSocket:       "unix:///run/falco/falco.sock",
		KeepaliveTime:    5 * time.Minute,
		KeepaliveTimeout: 20 * time.Second,
		BackoffInitial:   500 * time.Millisecond,
		BackoffMax:       30 * time.Second,
		PollInterval:     100 * time.Millisecond,
		BatchSize:        256,
		ShutdownTimeout:  5 * time.Second,
	}
}

// Validate checks the gRPC settings. It does not read files.
func (c GRPCConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Hostname != "" {
		if c.Port == 0 {
			add("port: required with hostname")
		}
		for _, f := range []struct{ name, v string }{{"cert_file", c.CertFile}, {"key_file", c.KeyFile}, {"ca_file", c.CAFile}} {
			if f.v == "" {
				add("%s: required with hostname (Falco's gRPC over TCP is mTLS only)", f.name)
			}
		}
	} else if !strings.HasPrefix(c.UnixSocket, "unix://") || len(c.UnixSocket) == len("unix://") {
		add("unix_socket: want unix:///path, got %q", c.UnixSocket)
	}
	if c.KeepaliveTime != 0 && c.KeepaliveTime < 10*time.Second {
		add("keepalive_time: want 0 (off) or at least 10s, got %s", c.KeepaliveTime)
	}
	if c.KeepaliveTime != 0 && c.KeepaliveTimeout <= 0 {
		add("keepalive_timeout: must be positive, got %s", c.KeepaliveTimeout)
	}
	if c.BackoffInitial <= 0 {
		add("backoff_initial: must be positive, got %s", c.BackoffInitial)
	}
	if c.BackoffMax < c.BackoffInitial {
		add("backoff_max: must be at least backoff_initial (%s), got %s", c.BackoffInitial, c.BackoffMax)
	}
	if c.PollInterval <= 0 {
		add("poll_interval: must be positive, got %s", c.PollInterval)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		add("batch_size: want 1..10000, got %d", c.BatchSize)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout: must be positive, got %s", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// prefixErr prefixes every joined error with p.
func prefixErr(p string, err error) error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fmt.Errorf("%s%w", p, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", p, err)
}
