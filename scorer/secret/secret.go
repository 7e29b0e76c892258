// Package secret holds credentials taken from configuration (tokens, webhook
// URLs, SASL passwords) so that they cannot leak through logs, errors or
// config dumps: a Secret prints as "<redacted>" everywhere except Value.
// A Ref is where the configuration says a credential comes from (inline,
// *_file, *_env); it is the one place that checks, words and resolves a
// secret, for every input, sink and the admin API. It imports only the
// standard library, so that any package may use it.
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

// Ref is where configuration says a credential comes from: the inline
// value of the key Key, the file named by Key_file, or the environment
// variable named by Key_env. A config struct keeps the three keys its users
// write and hands them out as a Ref, so that checking, wording and
// resolving a secret is written once, here.
type Ref struct {
	// Key is the YAML path of the inline value's key ("sasl.password");
	// errors name it, and its last segment names the _file and _env keys.
	Key    string
	Inline Secret
	File   string // path of a file holding the credential
	Env    string // name of an environment variable holding it
}

// Under returns r with prefix ("sinks.kafka.") in front of its key.
func (r Ref) Under(prefix string) Ref {
	r.Key = prefix + r.Key
	return r
}

// IsSet reports whether any of the three sources is named (an environment
// variable or a file may still turn out empty at start).
func (r Ref) IsSet() bool { return !r.Inline.IsZero() || r.File != "" || r.Env != "" }

// base is the last segment of the key, as the _file and _env keys beside
// it spell it.
func (r Ref) base() string { return r.Key[strings.LastIndexByte(r.Key, '.')+1:] }

// Required returns the one wording of a required secret that is not set
// ("url: empty (set url, url_file or url_env)"), or nil when it is set.
// alternative, when not empty, names another way to satisfy the
// requirement ("bot_token and channel").
func (r Ref) Required(alternative string) error {
	if r.IsSet() {
		return nil
	}
	b := r.base()
	if alternative != "" {
		return fmt.Errorf("%s: empty (set %s, %s_file or %s_env, or %s)", r.Key, b, b, b, alternative)
	}
	return fmt.Errorf("%s: empty (set %s, %s_file or %s_env)", r.Key, b, b, b)
}

// Exclusive refuses an inline value together with a file, for secrets
// where that mix would be ambiguous to the reader of the config.
func (r Ref) Exclusive() error {
	if !r.Inline.IsZero() && r.File != "" {
		b := r.base()
		return fmt.Errorf("%s: set either %s or %s_file, not both", r.Key, b, b)
	}
	return nil
}

// Resolve returns the credential from, in order: the environment variable
// Env (when named and set to a non-empty value), the file File (trailing
// newline trimmed), or the inline value. It is the one resolver of every
// secret; only a file that cannot be read is an error ("KEY_file: ...").
func (r Ref) Resolve() (Secret, error) {
	if r.Env != "" {
		if v, ok := os.LookupEnv(r.Env); ok && v != "" {
			return New(v), nil
		}
	}
	if r.File != "" {
		b, err := os.ReadFile(r.File)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: %w", r.Key, err)
		}
		return New(strings.TrimRight(string(b), "\r\n")), nil
	}
	return r.Inline, nil
}

// ResolveRequired is Resolve for a secret that must not come out empty: a
// file or a variable named in the config may be empty at start.
func (r Ref) ResolveRequired() (Secret, error) {
	s, err := r.Resolve()
	if err != nil {
		return Secret{}, err
	}
	if s.IsZero() {
		b := r.base()
		return Secret{}, fmt.Errorf("%s: empty after resolving %s_env and %s_file", r.Key, b, b)
	}
	return s, nil
}
