package tlsfiles_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/scorer/tlsfiles"
)

func TestServerAndClient(t *testing.T) {
	p := scorertest.NewPKI(t)
	srv, err := tlsfiles.Server(tlsfiles.Files{CertFile: p.ServerCert, KeyFile: p.ServerKey})
	if err != nil {
		t.Fatalf("Server() = %v", err)
	}
	if srv.MinVersion != tls.VersionTLS12 || len(srv.Certificates) != 1 || srv.ClientAuth != tls.NoClientCert || srv.ClientCAs != nil {
		t.Errorf("Server() = %+v, want TLS 1.2+, one certificate, no client auth", srv)
	}
	mtls, err := tlsfiles.Server(tlsfiles.Files{CertFile: p.ServerCert, KeyFile: p.ServerKey, CAFile: p.CAFile, CAKey: "client_ca_file"})
	if err != nil {
		t.Fatalf("Server(client CA) = %v", err)
	}
	if mtls.ClientAuth != tls.RequireAndVerifyClientCert || mtls.ClientCAs == nil {
		t.Errorf("Server(client CA): ClientAuth %v, ClientCAs %v; want client certificates required and verified", mtls.ClientAuth, mtls.ClientCAs)
	}
	cl, err := tlsfiles.Client(tlsfiles.Files{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}, "broker", false)
	if err != nil {
		t.Fatalf("Client() = %v", err)
	}
	if cl.MinVersion != tls.VersionTLS12 || cl.RootCAs == nil || len(cl.Certificates) != 1 || cl.ServerName != "broker" || cl.InsecureSkipVerify {
		t.Errorf("Client() = %+v, want TLS 1.2+, the CA as roots, one certificate, server name broker, verifying", cl)
	}
	sys, err := tlsfiles.Client(tlsfiles.Files{}, "", false)
	if err != nil || sys.RootCAs != nil || len(sys.Certificates) != 0 {
		t.Errorf("Client(no files) = %+v, %v; want the system roots and no certificate", sys, err)
	}
}

// TestErrorsNameTheKey: each file's error names its config key under tls.
func TestErrorsNameTheKey(t *testing.T) {
	p := scorertest.NewPKI(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"server without key pair", func() error {
			_, err := tlsfiles.Server(tlsfiles.Files{CertFile: missing, KeyFile: missing})
			return err
		}, "tls.cert_file: "},
		{"client CA missing", func() error {
			_, err := tlsfiles.Client(tlsfiles.Files{CAFile: missing}, "", false)
			return err
		}, "tls.ca_file: "},
		{"client CA not PEM", func() error {
			_, err := tlsfiles.Client(tlsfiles.Files{CAFile: notPEM}, "", false)
			return err
		}, "tls.ca_file: no PEM certificate in " + notPEM},
		{"server client CA not PEM", func() error {
			_, err := tlsfiles.Server(tlsfiles.Files{CertFile: p.ServerCert, KeyFile: p.ServerKey, CAFile: notPEM, CAKey: "client_ca_file"})
			return err
		}, "tls.client_ca_file: no PEM certificate in " + notPEM},
		{"client key pair mismatched", func() error {
			_, err := tlsfiles.Client(tlsfiles.Files{CertFile: p.ClientCert, KeyFile: p.ServerKey}, "", false)
			return err
		}, "tls.cert_file: "},
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want it to start with %q", tt.name, err, tt.want)
		}
	}
}
