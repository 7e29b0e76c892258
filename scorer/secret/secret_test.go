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
			got, err := Resolve("token", New("inline"), c.file, c.env)
			if err != nil || got.Value() != c.want {
				t.Errorf("Resolve() = %q, %v, want %q", got.Value(), err, c.want)
			}
		})
	}
	if _, err := Resolve("token", Secret{}, filepath.Join(dir, "missing"), ""); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Errorf("Resolve(missing file) error = %v, want one naming token_file", err)
	}
}
