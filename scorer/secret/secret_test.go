package secret

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := New("hunter2")
	for _, out := range []string{
		s.String(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %q %s", s, s, s, s, s),
		fmt.Sprintf("%v", struct{ S Secret }{s}),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("formatted secret leaked: %q", out)
		}
	}
	b, _ := json.Marshal(struct{ S Secret }{s})
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("json leaked: %s", b)
	}
	if s.Value() != "hunter2" {
		t.Errorf("Value() = %q, want hunter2", s.Value())
	}
}

func TestResolveOrder(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	if err := os.WriteFile(f, []byte("fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FS_TEST_TOKEN", "fromenv")
	cases := []struct {
		name, file, env, want string
	}{
		{"env wins", f, "FS_TEST_TOKEN", "fromenv"},
		{"file next", f, "", "fromfile"},
		{"inline last", "", "", "inline"},
		{"unset env falls through", "", "FS_TEST_UNSET", "inline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Ref{Key: "token", Inline: New("inline"), File: c.file, Env: c.env}.Resolve()
			if err != nil || got.Value() != c.want {
				t.Errorf("Resolve() = %q, %v, want %q", got.Value(), err, c.want)
			}
		})
	}
	if _, err := (Ref{Key: "token", File: filepath.Join(dir, "missing")}).Resolve(); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Errorf("Resolve(missing file) error = %v, want one naming token_file", err)
	}
}

// TestRefWording: every secret is checked and reported with one wording,
// naming the key by its YAML path and its _file and _env siblings by the
// names written beside it.
func TestRefWording(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := Ref{Key: "password"}.Under("sasl.")
	tests := []struct {
		name string
		err  error
		want string // "" wants nil
	}{
		{"required, unset", pw.Required(""), "sasl.password: empty (set password, password_file or password_env)"},
		{"required, alternative", Ref{Key: "webhook_url"}.Required("bot_token and channel"),
			"webhook_url: empty (set webhook_url, webhook_url_file or webhook_url_env, or bot_token and channel)"},
		{"required, env named", Ref{Key: "url", Env: "X"}.Required(""), ""},
		{"exclusive", Ref{Key: "token", Inline: New("a"), File: "/f"}.Exclusive(), "token: set either token or token_file, not both"},
		{"exclusive, env and inline", Ref{Key: "token", Inline: New("a"), Env: "E"}.Exclusive(), ""},
		{"resolved empty", func() error { _, err := Ref{Key: "sasl.password", File: empty}.ResolveRequired(); return err }(),
			"sasl.password: empty after resolving password_env and password_file"},
		{"missing file under a section", func() error {
			_, err := Ref{Key: "bot_token", File: empty + ".missing"}.Under("sinks.slack.").ResolveRequired()
			return err
		}(), "sinks.slack.bot_token_file: open "},
	}
	for _, tt := range tests {
		got := ""
		if tt.err != nil {
			got = tt.err.Error()
		}
		if tt.want == "" && got != "" || tt.want != "" && !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: error = %q, want %q", tt.name, got, tt.want)
		}
	}
	if r := (Ref{Key: "k", Inline: New("v")}); !r.IsSet() || (Ref{Key: "k"}).IsSet() {
		t.Error("IsSet() wrong: want true with an inline value, false with nothing")
	}
	if s, err := (Ref{Key: "k", Inline: New("v")}).ResolveRequired(); err != nil || s.Value() != "v" {
		t.Errorf("ResolveRequired(inline v) = %q, %v, want v", s.Value(), err)
	}
}
