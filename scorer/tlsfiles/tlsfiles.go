package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files names the PEM files of one end of a TLS connection.
type Files struct {
	CertFile string // own certificate (chain); with KeyFile
	KeyFile  string
	CAFile   string // CA bundle that verifies the other end; "" for none
	// CAKey is CAFile's config key under tls, for errors: "ca_file" when
	// empty, "client_ca_file" for a server's client CA.
	CAKey string
}

// Server returns the configuration of a server presenting CertFile and
// KeyFile; with CAFile set, clients must present a certificate it signed
// (mTLS).
func Server(f Files) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := f.loadCert(tc); err != nil {
		return nil, err
	}
	if f.CAFile != "" {
		pool, err := f.loadCA()
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Client returns the configuration of a client that verifies the server
// against CAFile (the system roots when it is empty) under serverName (the
// dialled host when empty), presenting CertFile and KeyFile when set.
// insecureSkipVerify turns verification off: an explicit opt-in only.
func Client(f Files, serverName string, insecureSkipVerify bool) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: insecureSkipVerify, //nolint:gosec // explicit opt-in, off by default
	}
	if f.CAFile != "" {
		pool, err := f.loadCA()
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" {
		if err := f.loadCert(tc); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

func (f Files) loadCert(tc *tls.Config) error {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return fmt.Errorf("tls.cert_file: %w", err)
	}
	tc.Certificates = []tls.Certificate{cert}
	return nil
}

func (f Files) loadCA() (*x509.CertPool, error) {
	key := f.CAKey
	if key == "" {
		key = "ca_file"
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.%s: no PEM certificate in %s", key, f.CAFile)
	}
	return pool, nil
}
