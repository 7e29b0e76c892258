package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
		{"negative repeat_interval", "scorer: {repeat_interval: -1m}\n", []string{"repeat_interval"}},
		{"repeat_interval off", "scorer: {repeat_interval: 0s}\n", nil},
		{"missing broker list", "sinks:\n  kafka:\n    enabled: true\n    brokers: []\n", []string{"sinks.kafka.brokers"}},
		{"bad log level", "log: {level: loud}\n", []string{"log.level"}},
		{"slack without url", "sinks:\n  slack: {enabled: true}\n", []string{"sinks.slack"}},
		{"missing rules file", "rules_file: /nonexistent/rules.yaml\n", []string{"rules_file"}},
		{"bad listen", "inputs:\n  http: {listen: \"nowhere\"}\n", []string{"inputs.http.listen"}},
		// Issue 18: config check said "ok", then serve exited 1.
		{"missing slack webhook_url_file", "sinks:\n  slack: {enabled: true, webhook_url_file: /nonexistent/slack-url}\n",
			[]string{"sinks.slack.webhook_url_file", "/nonexistent/slack-url"}},
		{"missing webhook url_file", "sinks:\n  webhook: {enabled: true, url_file: /nonexistent/hook}\n",
			[]string{"sinks.webhook.url_file"}},
		{"missing admin token_file", "admin: {listen: \"127.0.0.1:9090\", token_file: /nonexistent/admin-token}\n",
			[]string{"admin.token_file"}},
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
			// One validation path: serve refuses it with the same error,
			// before it listens or opens the store.
			if _, serr := runCLI("serve", "-c", path); serr == nil || serr.Error() != err.Error() {
				t.Errorf("serve error = %v, want config check's %q", serr, err)
			}
		})
	}
}

// shippedConfigs returns the configurations the project ships: the example
// file, the container image's built-in config, every falco-scorer*.yaml
// embedded in the Kubernetes ConfigMap, and the Helm chart's default
// config (values.yaml's config). A missing file is a failure: these are
// the configurations users start from.
func shippedConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	deploy := filepath.Join("..", "..", "deploy")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(deploy, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := map[string][]byte{}
	for _, f := range []string{"config/falco-scorer.example.yaml", "config/container.yaml", "config/falco-scorer.chain.yaml"} {
		out[f] = read(f)
	}
	cm := "kubernetes/falco-scorer-config.yaml"
	dec := yaml.NewDecoder(bytes.NewReader(read(cm)))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", cm, err)
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
	var values struct {
		Config yaml.Node `yaml:"config"`
	}
	if err := yaml.Unmarshal(read("helm/falco-scorer/values.yaml"), &values); err != nil || values.Config.Kind == 0 {
		t.Fatalf("helm/falco-scorer/values.yaml: config: %v", err)
	}
	chartCfg, err := yaml.Marshal(&values.Config)
	if err != nil {
		t.Fatal(err)
	}
	out["helm/falco-scorer/values.yaml:config"] = chartCfg
	if n := len(out); n < 6 {
		t.Fatalf("found %d shipped configurations, want the example, container.yaml, the falcosidekick chain, two sidecar configs and the chart's: %v", n, keys(out))
	}
	return out
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestShippedConfigsLoad runs `config check` (strict decoding and
// validation, as at start) in-process on every shipped configuration: a key
// in a manifest that the service does not know (admin.listen before the
// service has it, a typo) fails here. Paths to files that exist only in a
// pod (rules_file, the mounted secrets) are pointed at temporary files
// first, since Validate checks that rules_file exists and resolves secrets.
// podSecret matches the secret files the shipped configs read in a pod.
var podSecret = regexp.MustCompile(`/etc/falco-scorer/secrets/[A-Za-z0-9._-]+`)

func TestShippedConfigsLoad(t *testing.T) {
	configs := shippedConfigs(t)
	for _, name := range keys(configs) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rules := filepath.Join(dir, "rules.yaml")
			if err := os.WriteFile(rules, []byte("{}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(configs[name]), "/etc/falco-scorer/rules.yaml", rules)
			// Secrets mounted in the pod: config check resolves them as
			// serve does, so each gets a stand-in file here.
			text = podSecret.ReplaceAllStringFunc(text, func(p string) string {
				f := filepath.Join(dir, filepath.Base(p))
				if err := os.WriteFile(f, []byte("https://stand-in.invalid/"+filepath.Base(p)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return f
			})
			path := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := runCLI("config", "check", path); err != nil || !strings.Contains(out, "ok") {
				t.Errorf("falco-scorer config check %s = %q, %v", name, out, err)
			}
		})
	}
}

// FuzzConfig feeds arbitrary YAML to the strict config decoder and
// validation: no input may panic, a decoding error names no Go type, and
// a config that loads must survive a marshal/decode round trip.
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
			// Errors name YAML paths, never our Go types (issue 18).
			if m := goTypeIn(err.Error(), b); m != "" {
				t.Fatalf("decodeConfig(%q) = %q, names the Go type %q", b, err, m)
			}
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
