// Package secret holds credentials taken from configuration (tokens, webhook
// URLs, SASL passwords) so that they cannot leak through logs, errors or
// config dumps: a Secret prints as "<redacted>" everywhere except Value.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a credential. Its String, GoString and MarshalText forms are
// redacted; only Value returns the real text.
type Secret struct{ v string }

// New wraps a credential.
func New(v string) Secret { return Secret{v: v} }

// Value returns the credential itself. Call it only where the credential is
// sent to its destination.
func (s Secret) Value() string { return s.v }

// IsZero reports whether no credential is set.
func (s Secret) IsZero() bool { return s.v == "" }

const redacted = "<redacted>"

func (s Secret) String() string   { return s.mask() }
func (s Secret) GoString() string { return s.mask() }

// Format keeps %v, %+v, %q and friends redacted too.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.mask()) }

// MarshalText redacts, so a Secret never reaches JSON or YAML output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// UnmarshalText takes the credential from configuration text.
func (s *Secret) UnmarshalText(b []byte) error { s.v = string(b); return nil }

func (s Secret) mask() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// Resolve picks a credential from, in order: the environment variable env
// (when env is not empty and set), the file path file (trailing newline
// trimmed), or the inline value. field names the config key for errors.
func Resolve(field string, inline Secret, file, env string) (Secret, error) {
	if env != "" {
		if v, ok := os.LookupEnv(env); ok && v != "" {
			return New(v), nil
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: %w", field, err)
		}
		return New(strings.TrimRight(string(b), "\r\n")), nil
	}
	return inline, nil
}
