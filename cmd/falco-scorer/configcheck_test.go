package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// runCLI runs the root command with args and returns its output and error.
func runCLI(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := newRootCmd(&out, &out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestConfigCheck (issue 3 #5): `config check` fails on an unknown key, a
// bad duration and a missing broker list, with a message naming each.
func TestConfigCheck(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error; nil: must pass
	}{
		{"empty file", "", nil},
		{"valid", "sinks:\n  kafka:\n    enabled: true\n    brokers: [\"k:9092\"]\nshutdown_timeout: 5s\n", nil},
		{"unknown top-level key", "log: {level: info}\nsinkz: {}\n", []string{"sinkz", "line 2"}},
		{"unknown nested key", "scorer:\n  order: 4\n  learning_min_events: 20000\n", []string{"learning_min_events", "line 3"}},
		{"bad duration", "scorer:\n  flush_interval: 5 parsecs\n", []string{"5 parsecs", "line 2"}},
		{"negative duration", "shutdown_timeout: -1s\n", []string{"shutdown_timeout"}},
		{"missing broker list", "sinks:\n  kafka:\n    enabled: true\n    brokers: []\n", []string{"sinks.kafka.brokers"}},
		{"bad log level", "log: {level: loud}\n", []string{"log.level"}},
		{"slack without url", "sinks:\n  slack: {enabled: true}\n", []string{"sinks.slack"}},
		{"missing rules file", "rules_file: /nonexistent/rules.yaml\n", []string{"rules_file"}},
		{"bad listen", "inputs:\n  http: {listen: \"nowhere\"}\n", []string{"inputs.http.listen"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runCLI("config", "check", path)
			if tc.want == nil {
				if err != nil || !strings.Contains(out, "ok") {
					t.Errorf("config check = %q, %v; want ok", out, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("config check = %q, nil; want an error naming %q", out, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("config check error = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

// shippedConfigs returns the configurations the project ships: the example
// file and every falco-scorer*.yaml embedded in the Kubernetes ConfigMap.
func shippedConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ex := filepath.Join("..", "..", "deploy", "config", "falco-scorer.example.yaml")
	if b, err := os.ReadFile(ex); err == nil {
		out[ex] = b
	}
	cm := filepath.Join("..", "..", "deploy", "kubernetes", "falco-scorer-config.yaml")
	if b, err := os.ReadFile(cm); err == nil {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			if err := dec.Decode(&doc); err != nil {
				break
			}
			if doc.Kind != "ConfigMap" {
				continue
			}
			for k, v := range doc.Data {
				if strings.HasPrefix(k, "falco-scorer") {
					out[cm+":"+k] = []byte(v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Skip("deploy/ not found")
	}
	return out
}

// TestShippedConfigsLoad checks that the example config and the
// ConfigMap's embedded configs decode strictly and validate. Paths to files
// that exist only in a pod (rules_file, *_file secrets) are pointed at
// temporary files first, since Validate checks that rules_file exists.
func TestShippedConfigsLoad(t *testing.T) {
	for name, b := range shippedConfigs(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			dir := t.TempDir()
			rules := filepath.Join(dir, "rules.yaml")
			os.WriteFile(rules, []byte("{}\n"), 0o600)
			text := strings.ReplaceAll(string(b), "/etc/falco-scorer/rules.yaml", rules)
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadConfig(path); err != nil {
				t.Errorf("LoadConfig(%s) = %v", name, err)
			}
		})
	}
}

// FuzzConfig feeds arbitrary YAML to the strict config decoder and
// validation: no input may panic, and a config that loads must survive
// a marshal/decode round trip.
func FuzzConfig(f *testing.F) {
	seeds := []string{
		"",
		"log: {level: debug, format: console}\n",
		"data_dir: /data\ninputs:\n  http: {listen: \"127.0.0.1:2801\", max_body_bytes: 1048576}\n",
		"scorer: {order: 4, window: 30, flush_interval: 5s, horizon: 168h}\n",
		"sinks:\n  kafka: {enabled: true, brokers: [\"k:9092\"], sasl: {mechanism: PLAIN, username: u, password_env: P}}\n",
		"sinks:\n  slack: {enabled: true, webhook_url_env: SLACK}\n  webhook: {enabled: true, url: \"http://x/\"}\n",
		"shutdown_timeout: 1h\nstore: {min_free_bytes: 0, gc_interval: 1s}\n",
		"a: &a [*a]\n",
		"scorer: {flush_interval: 9999999999999999999h}\n",
		"inputs: !!binary aGVsbG8=\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		cfg := DefaultConfig()
		if err := decodeConfig(b, &cfg); err != nil {
			return
		}
		if cfg.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal a valid config: %v", err)
		}
		again := DefaultConfig()
		if err := decodeConfig(out, &again); err != nil {
			t.Fatalf("decode(marshal(config)) = %v\n%s", err, out)
		}
	})
}
