package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// goTypeIn returns a Go type name that msg mentions and input does not
// (a key of the input appears in paths, such as sinks.A): any type the
// config decodes into (main.KafkaConfig, time.Duration, []string, int).
func goTypeIn(msg string, input []byte) string {
	seen := map[reflect.Type]bool{}
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		names = append(names, t.String())
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	for _, n := range names {
		// Bare kinds (int, bool, string) only after "into", where yaml.v3
		// puts them: they are ordinary words elsewhere.
		if !strings.ContainsAny(n, ".[") {
			n = "into " + n
		}
		if strings.Contains(msg, n) && !bytes.Contains(input, []byte(n)) {
			return n
		}
	}
	return ""
}

// TestLoadConfigErrorsNameYAMLPath (issue 18): a malformed config is
// refused with the YAML path of the offending key and its line, in YAML's
// words (a list, a mapping, a duration), never a Go type name such as
// main.KafkaConfig.
func TestLoadConfigErrorsNameYAMLPath(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"list for a section", "sinks:\n  kafka: [a]\n",
			[]string{"sinks.kafka: line 2", "got a list, want a mapping"}},
		{"block list for a section", "sinks:\n  kafka:\n    - a\n",
			[]string{"sinks.kafka: line 3", "want a mapping"}},
		{"scalar for the document", "hello\n",
			[]string{"line 1", `got "hello"`, "want a mapping"}},
		{"binary for a section", "inputs: !!binary aGVsbG8=\n",
			[]string{"inputs: line 1", "want a mapping"}},
		{"string for a bool", "sinks:\n  kafka:\n    enabled: yes please\n",
			[]string{"sinks.kafka.enabled: line 3", `got "yes please"`, "want true or false"}},
		{"string for an integer", "scorer:\n  order: four\n",
			[]string{"scorer.order: line 2", `got "four"`, "want an integer"}},
		{"bad duration", "scorer:\n  flush_interval: 5 parsecs\n",
			[]string{"scorer.flush_interval: line 2", "5 parsecs", "want a duration"}},
		{"mapping for a list", "admin:\n  allowed_hosts: {a: b}\n",
			[]string{"admin.allowed_hosts: line 2", "got a mapping, want a list"}},
		{"two errors on one flow line", "sinks: {kafka: {enabled: true, brokers: x, tls: 3}}\n",
			[]string{"sinks.kafka.brokers: line 1", `got "x", want a list`, "sinks.kafka.tls: line 1", "got 3, want a mapping"}},
		{"list item of the wrong type", "sinks:\n  kafka:\n    brokers:\n      - [a, b]\n",
			[]string{"sinks.kafka.brokers[0]: line 4", "got a list, want a string"}},
		{"unknown key in an inlined section", "sinks:\n  kafka:\n    enabled: true\n    brokerz: [a]\n",
			[]string{"sinks.kafka.brokerz: line 4", "unknown key", "brokers"}},
		{"unknown top-level key", "log: {level: info}\nsinkz: {}\n",
			[]string{"sinkz: line 2", "unknown key", "sinks"}},
		{"invalid priority", "sinks:\n  slack: {enabled: true, webhook_url_env: X, min_priority: Loud}\n",
			[]string{"sinks.slack.min_priority: line 2", "Loud"}},
		{"duplicate key", "scorer:\n  order: 4\n  order: 5\n",
			[]string{"scorer.order: line 3", "already defined at line 2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig(%q) = nil error, want one naming %q", tc.yaml, tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("LoadConfig(%q) error = %q, want it to contain %q", tc.yaml, msg, w)
				}
			}
			if m := goTypeIn(msg, []byte(tc.yaml)); m != "" {
				t.Errorf("LoadConfig(%q) error = %q, names the Go type %q", tc.yaml, msg, m)
			}
		})
	}
}

// readmeConfigs returns the fenced YAML blocks of a Markdown file that open
// with the line "# falco-scorer.yaml": the configuration snippets the
// READMEs offer to copy.
func readmeConfigs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	rest := string(b)
	for {
		i := strings.Index(rest, "```yaml\n# falco-scorer.yaml")
		if i < 0 {
			return out
		}
		rest = rest[i+len("```yaml\n"):]
		j := strings.Index(rest, "\n```")
		if j < 0 {
			t.Fatalf("%s: unterminated yaml block", path)
		}
		out = append(out, rest[:j+1])
		rest = rest[j:]
	}
}

// TestReadmeConfigSnippetsLoad (issue 18): the falco-scorer configurations
// the READMEs show for chaining falcosidekick and falco-talon pass
// `config check` as printed.
func TestReadmeConfigSnippetsLoad(t *testing.T) {
	for _, readme := range []string{"../../README.md", "../../deploy/README.md"} {
		snippets := readmeConfigs(t, readme)
		if len(snippets) == 0 {
			t.Errorf("%s: no falco-scorer.yaml snippet (a yaml block opening with \"# falco-scorer.yaml\")", readme)
		}
		for i, s := range snippets {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := runCLI("config", "check", path); err != nil || !strings.Contains(out, "ok") {
				t.Errorf("%s snippet %d: config check = %q, %v\n%s", readme, i+1, out, err, s)
			}
		}
	}
}
