// Package tlsfiles turns the PEM files a configuration names (an own
// certificate and key, a CA bundle) into a crypto/tls.Config, for the HTTP
// input (a server, mTLS when a client CA is set) and the Kafka sink (a
// client). It is the one loader of TLS files, so both read them and word
// their errors the same way: each error names the config key under tls
// ("tls.cert_file: ...", "tls.client_ca_file: no PEM certificate in ...").
//
// What it must not do: turn verification off unless asked (Client's
// insecureSkipVerify), or accept less than TLS 1.2. It imports only the
// standard library; it reads files only when called and keeps no state.
package tlsfiles
