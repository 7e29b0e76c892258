package kafka_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

func TestTLSVerifiesByDefault(t *testing.T) {
	p := scorertest.NewPKI(t) // a server certificate signed by a CA the system does not know
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	addr := c.ListenAddrs()[0]
	caFile := p.CAFile
	tests := []struct {
		name    string
		tls     kafka.TLSConfig
		wantErr bool // kafka-go reports a failed handshake as "Broker Not Available"
	}{
		{"trusted CA", kafka.TLSConfig{Enabled: true, CAFile: caFile}, false},
		{"system roots reject self-signed", kafka.TLSConfig{Enabled: true}, true},
		{"explicit insecure", kafka.TLSConfig{Enabled: true, InsecureSkipVerify: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(addr, "tls")
			cfg.TLS = tt.tls
			cfg.MaxAttempts = 1
			s := newSink(t, cfg, zerolog.Nop())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r := s.Send(ctx, items(t, sinkstest.FalcoAlert(1, "nginx:1.27", rule)))
			if !r.OK() != tt.wantErr {
				t.Errorf("Send() = %v, want error %v", r, tt.wantErr)
			}
		})
	}
}
