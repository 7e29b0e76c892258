package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/rules"
)

// Names shared by the manifests; a change here must be a change everywhere.
const (
	port          = 2801
	configMapName = "falco-scorer-config"
	secretName    = "falco-scorer-secrets"
	sidecarName   = "falco-scorer"
)

// ---------------------------------------------------------------------------
// Generic YAML helpers.

// obj is a decoded YAML mapping.
type obj = map[string]any

// get walks m by keys (string) and indexes (int); nil when absent.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func decodeDocs(t *testing.T, name string, b []byte) []obj {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: parse YAML: %v", name, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

func readDocs(t *testing.T, file string) []obj {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return decodeDocs(t, file, b)
}

func decodeOne(t *testing.T, name, text string) obj {
	t.Helper()
	var m obj
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("%s: parse YAML: %v", name, err)
	}
	return m
}

// keyPaths lists every mapping key path in v ("sinks.kafka.sasl.username");
// lists are entered with "[]".
func keyPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case obj:
		for k, c := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			keyPaths(c, p, out)
		}
	case []any:
		for _, c := range x {
			keyPaths(c, prefix+"[]", out)
		}
	}
}

// exampleConfigKeys are the key paths of deploy/config/falco-scorer.example.yaml,
// the reference for every other copy of the service configuration.
func exampleConfigKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("config/falco-scorer.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	keyPaths(decodeOne(t, "falco-scorer.example.yaml", string(b)), "", keys)
	return keys
}

// checkConfigKeys reports keys of a service configuration copy that the
// example does not have (a typo or a forgotten rename), and checks the few
// values the manifests depend on.
func checkConfigKeys(t *testing.T, name string, cfg obj, ref map[string]bool) {
	t.Helper()
	keys := map[string]bool{}
	keyPaths(cfg, "", keys)
	var unknown []string
	for k := range keys {
		if !ref[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("%s: keys not in config/falco-scorer.example.yaml: %v", name, unknown)
	}
	if got, want := str(cfg, "inputs", "http", "listen"), fmt.Sprintf("0.0.0.0:%d", port); got != want {
		t.Errorf("%s: inputs.http.listen = %q, want %q (probes and metrics come from outside the pod)", name, got, want)
	}
	if got := str(cfg, "data_dir"); got != "/data" {
		t.Errorf("%s: data_dir = %q, want /data (the data volume's mount)", name, got)
	}
	if got := str(cfg, "rules_file"); got != "/etc/falco-scorer/rules.yaml" {
		t.Errorf("%s: rules_file = %q, want /etc/falco-scorer/rules.yaml", name, got)
	}
}

// ---------------------------------------------------------------------------
// Container checks shared by the sidecar and the Helm chart's workload.

type containerWant struct {
	nonRoot    bool     // runAsNonRoot with a non-zero user
	portName   string   // probes may name the port
	volumes    []string // volumes defined in the pod
	configFile string   // expected --config path
}

func checkContainer(t *testing.T, where string, c obj, w containerWant) {
	t.Helper()
	if str(c, "image") == "" {
		t.Errorf("%s: container has no image", where)
	}
	args := list(c, "args")
	if len(args) != 2 || args[0] != "--config" || args[1] != w.configFile {
		t.Errorf("%s: args = %v, want [--config %s]", where, args, w.configFile)
	}
	portOK := false
	for _, p := range list(c, "ports") {
		if get(p, "containerPort") == port {
			portOK = true
		}
	}
	if !portOK {
		t.Errorf("%s: no containerPort %d", where, port)
	}
	for probe, wantPath := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		p := get(c, probe)
		if p == nil {
			t.Errorf("%s: no %s", where, probe)
			continue
		}
		if got := str(p, "httpGet", "path"); got != wantPath {
			t.Errorf("%s: %s path = %q, want %q", where, probe, got, wantPath)
		}
		if pt := get(p, "httpGet", "port"); pt != port && pt != w.portName {
			t.Errorf("%s: %s port = %v, want %d or %q", where, probe, pt, port, w.portName)
		}
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if get(c, "resources", kind, res) == nil {
				t.Errorf("%s: resources.%s.%s missing", where, kind, res)
			}
		}
	}
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true {
		t.Errorf("%s: securityContext.readOnlyRootFilesystem = %v, want true", where, get(sc, "readOnlyRootFilesystem"))
	}
	if get(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("%s: securityContext.allowPrivilegeEscalation = %v, want false", where, get(sc, "allowPrivilegeEscalation"))
	}
	if drop := list(sc, "capabilities", "drop"); !slices.Contains(drop, any("ALL")) {
		t.Errorf("%s: securityContext.capabilities.drop = %v, want [ALL]", where, drop)
	}
	if add := list(sc, "capabilities", "add"); len(add) > 0 {
		t.Errorf("%s: securityContext.capabilities.add = %v, want none", where, add)
	}
	if get(sc, "privileged") == true {
		t.Errorf("%s: privileged container", where)
	}
	if w.nonRoot {
		if get(sc, "runAsNonRoot") != true {
			t.Errorf("%s: securityContext.runAsNonRoot = %v, want true", where, get(sc, "runAsNonRoot"))
		}
		if u, ok := get(sc, "runAsUser").(int); !ok || u == 0 {
			t.Errorf("%s: securityContext.runAsUser = %v, want a non-zero uid", where, get(sc, "runAsUser"))
		}
	}
	mounts := map[string]string{}
	for _, m := range list(c, "volumeMounts") {
		name, mp := str(m, "name"), str(m, "mountPath")
		mounts[mp] = name
		if !slices.Contains(w.volumes, name) {
			t.Errorf("%s: volumeMount %q refers to no volume of the pod (have %v)", where, name, w.volumes)
		}
	}
	for _, mp := range []string{"/data", "/etc/falco-scorer", "/etc/falco-scorer/secrets", "/tmp"} {
		if mounts[mp] == "" {
			t.Errorf("%s: nothing mounted at %s (read-only root filesystem needs it)", where, mp)
		}
	}
}

// ---------------------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms, runs []string
	var user, expose, entrypoint, volume string
	sc := bufio.NewScanner(f)
	var cont strings.Builder
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cont.WriteString(s + " ")
			continue
		}
		line = cont.String() + line
		cont.Reset()
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			froms = append(froms, rest)
		case "RUN":
			runs = append(runs, rest)
		case "USER":
			user = rest
		case "EXPOSE":
			expose = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "VOLUME":
			volume = rest
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines = %v, want a multi-stage build", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:1.26") {
		t.Errorf("builder = %q, want golang:1.26", froms[0])
	}
	if final := froms[len(froms)-1]; !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage = %q, want distroless static or scratch", final)
	}
	build := strings.Join(runs, " ")
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/falco-scorer", "-o /out/falco-scorer"} {
		if !strings.Contains(build, want) {
			t.Errorf("RUN lines lack %q", want)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER = %q, want a non-root user", user)
	}
	if expose != fmt.Sprint(port) {
		t.Errorf("EXPOSE = %q, want %d", expose, port)
	}
	if entrypoint != `["/falco-scorer", "serve"]` {
		t.Errorf("ENTRYPOINT = %s, want [\"/falco-scorer\", \"serve\"]", entrypoint)
	}
	if !strings.Contains(volume, "/data") {
		t.Errorf("VOLUME = %q, want /data", volume)
	}
}

func TestExampleConfig(t *testing.T) {
	keys := exampleConfigKeys(t)
	var top []string
	for k := range keys {
		if !strings.Contains(k, ".") {
			top = append(top, k)
		}
	}
	sort.Strings(top)
	want := []string{"data_dir", "inputs", "log", "rules_file", "scorer", "sinks"}
	if !slices.Equal(top, want) {
		t.Errorf("top-level keys = %v, want %v", top, want)
	}
	b, _ := os.ReadFile("config/falco-scorer.example.yaml")
	cfg := decodeOne(t, "example", string(b))
	checkConfigKeys(t, "config/falco-scorer.example.yaml", cfg, keys)
	for _, k := range []string{"sinks.kafka.sasl.password_file", "sinks.slack.webhook_url_file", "inputs.http.token_file"} {
		if !keys[k] {
			t.Errorf("example config lacks %s: secrets must come from files", k)
		}
	}
	if _, err := rules.Load("config/rules.example.yaml"); err != nil {
		t.Errorf("rules.Load(config/rules.example.yaml) = %v, want nil", err)
	}
}

func TestConfigMapAndSecret(t *testing.T) {
	docs := readDocs(t, "kubernetes/falco-scorer-config.yaml")
	ref := exampleConfigKeys(t)
	kinds := map[string]obj{}
	for _, d := range docs {
		checkObjectBasics(t, "kubernetes/falco-scorer-config.yaml", d)
		kinds[str(d, "kind")] = d
	}
	cm, sec := kinds["ConfigMap"], kinds["Secret"]
	if cm == nil || sec == nil {
		t.Fatalf("kinds = %v, want a ConfigMap and a Secret", keysOf(kinds))
	}
	if got := str(cm, "metadata", "name"); got != configMapName {
		t.Errorf("ConfigMap name = %q, want %q", got, configMapName)
	}
	if got := str(sec, "metadata", "name"); got != secretName {
		t.Errorf("Secret name = %q, want %q", got, secretName)
	}
	for key, grpc := range map[string]bool{"falco-scorer.yaml": false, "falco-scorer-grpc.yaml": true} {
		text := str(cm, "data", key)
		if text == "" {
			t.Errorf("ConfigMap lacks data.%s", key)
			continue
		}
		cfg := decodeOne(t, key, text)
		checkConfigKeys(t, "ConfigMap "+key, cfg, ref)
		if got := get(cfg, "inputs", "grpc", "enabled"); got != grpc {
			t.Errorf("ConfigMap %s: inputs.grpc.enabled = %v, want %v", key, got, grpc)
		}
		if get(cfg, "inputs", "http", "token_file") != nil {
			t.Errorf("ConfigMap %s: inputs.http.token_file set, but Falco's http_output cannot send a token", key)
		}
		for _, f := range []any{get(cfg, "sinks", "kafka", "sasl", "password_file"), get(cfg, "sinks", "slack", "webhook_url_file")} {
			name := path.Base(fmt.Sprint(f))
			if get(sec, "stringData", name) == nil {
				t.Errorf("ConfigMap %s refers to secret file %q that the Secret does not provide", key, name)
			}
		}
	}
	rulesText := str(cm, "data", "rules.yaml")
	if _, err := rules.Parse([]byte(rulesText), "ConfigMap rules.yaml"); err != nil {
		t.Errorf("ConfigMap rules.yaml does not parse: %v", err)
	}
	example, _ := os.ReadFile("config/rules.example.yaml")
	if rulesText != string(example) {
		t.Errorf("ConfigMap rules.yaml differs from config/rules.example.yaml; copy the example into the ConfigMap")
	}
}

func TestMonitoring(t *testing.T) {
	docs := readDocs(t, "kubernetes/falco-scorer-monitoring.yaml")
	var svc, sm obj
	for _, d := range docs {
		checkObjectBasics(t, "kubernetes/falco-scorer-monitoring.yaml", d)
		switch str(d, "kind") {
		case "Service":
			svc = d
		case "ServiceMonitor":
			sm = d
		}
	}
	if svc == nil || sm == nil {
		t.Fatalf("want a Service and a ServiceMonitor")
	}
	checkServiceMonitor(t, "kubernetes/falco-scorer-monitoring.yaml", sm, svc)
	if got := get(svc, "spec", "ports", 0, "targetPort"); got != port {
		t.Errorf("Service targetPort = %v, want %d", got, port)
	}
}

func checkServiceMonitor(t *testing.T, where string, sm, svc obj) {
	t.Helper()
	if got := str(sm, "apiVersion"); got != "monitoring.coreos.com/v1" {
		t.Errorf("%s: ServiceMonitor apiVersion = %q", where, got)
	}
	ep := get(sm, "spec", "endpoints", 0)
	if str(ep, "path") != "/metrics" {
		t.Errorf("%s: ServiceMonitor path = %q, want /metrics", where, str(ep, "path"))
	}
	portName := str(ep, "port")
	found := false
	for _, p := range list(svc, "spec", "ports") {
		if str(p, "name") == portName {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: ServiceMonitor port %q is not a named port of the Service", where, portName)
	}
	sel, _ := get(sm, "spec", "selector", "matchLabels").(obj)
	labels, _ := get(svc, "metadata", "labels").(obj)
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("%s: ServiceMonitor selects %s=%v, the Service has %v", where, k, v, labels[k])
		}
	}
}

func checkObjectBasics(t *testing.T, where string, d obj) {
	t.Helper()
	for _, k := range []string{"apiVersion", "kind"} {
		if str(d, k) == "" {
			t.Errorf("%s: object without %s: %v", where, k, d)
		}
	}
	if str(d, "metadata", "name") == "" {
		t.Errorf("%s: %s without metadata.name", where, str(d, "kind"))
	}
}

func keysOf(m map[string]obj) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestFalcoChartValues(t *testing.T) {
	cmDocs := readDocs(t, "kubernetes/falco-scorer-config.yaml")
	cmKeys := map[string]bool{}
	for _, d := range cmDocs {
		if str(d, "kind") == "ConfigMap" {
			for k := range get(d, "data").(obj) {
				cmKeys[k] = true
			}
		}
	}
	tests := []struct {
		file string
		grpc bool
	}{
		{"kubernetes/falco-values.yaml", false},
		{"kubernetes/falco-values-grpc.yaml", true},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			docs := readDocs(t, tt.file)
			if len(docs) != 1 {
				t.Fatalf("%s: %d documents, want 1", tt.file, len(docs))
			}
			v := docs[0]
			if get(v, "falco", "json_output") != true {
				t.Errorf("falco.json_output = %v, want true", get(v, "falco", "json_output"))
			}
			if p := strings.ToLower(str(v, "falco", "priority")); p != "debug" {
				t.Errorf("falco.priority = %q, want debug (observations are Debug)", p)
			}
			if got := str(v, "customRules", "falco-scorer_rules.yaml"); got != strings.TrimRight(string(rules.FalcoRules()), "\n") {
				t.Errorf("customRules[falco-scorer_rules.yaml] differs from rules/falco-scorer_rules.yaml; regenerate the values file")
			}
			socketDir := ""
			if tt.grpc {
				if get(v, "falco", "grpc", "enabled") != true || get(v, "falco", "grpc_output", "enabled") != true {
					t.Errorf("falco.grpc.enabled and falco.grpc_output.enabled must both be true")
				}
				addr := str(v, "falco", "grpc", "bind_address")
				sock, ok := strings.CutPrefix(addr, "unix://")
				if !ok {
					t.Errorf("falco.grpc.bind_address = %q, want a unix:// socket", addr)
				}
				socketDir = path.Dir(sock)
				if get(v, "falco", "http_output", "enabled") == true {
					t.Errorf("falco.http_output.enabled = true in the gRPC variant: events would arrive twice")
				}
			} else {
				if get(v, "falco", "http_output", "enabled") != true {
					t.Errorf("falco.http_output.enabled = %v, want true", get(v, "falco", "http_output", "enabled"))
				}
				if got, want := str(v, "falco", "http_output", "url"), fmt.Sprintf("http://127.0.0.1:%d/", port); got != want {
					t.Errorf("falco.http_output.url = %q, want %q", got, want)
				}
			}
			volumes := []string{}
			var dataVol obj
			for _, vol := range list(v, "mounts", "volumes") {
				volumes = append(volumes, str(vol, "name"))
				switch {
				case str(vol, "name") == "falco-scorer-data":
					dataVol, _ = vol.(obj)
				case get(vol, "configMap") != nil && str(vol, "configMap", "name") != configMapName:
					t.Errorf("volume %s uses ConfigMap %q, want %q", str(vol, "name"), str(vol, "configMap", "name"), configMapName)
				case get(vol, "secret") != nil && str(vol, "secret", "secretName") != secretName:
					t.Errorf("volume %s uses Secret %q, want %q", str(vol, "name"), str(vol, "secret", "secretName"), secretName)
				}
			}
			if str(dataVol, "hostPath", "path") == "" {
				t.Errorf("falco-scorer-data volume = %v, want a hostPath so baselines survive restarts", dataVol)
			}
			if tt.grpc {
				volumes = append(volumes, "grpc-socket-dir") // created by the chart for a unix bind_address
			}
			var sidecar obj
			for _, c := range list(v, "extra", "initContainers") {
				if str(c, "name") == sidecarName {
					sidecar, _ = c.(obj)
				} else {
					for _, m := range list(c, "volumeMounts") {
						if !slices.Contains(volumes, str(m, "name")) {
							t.Errorf("init container %s mounts unknown volume %q", str(c, "name"), str(m, "name"))
						}
					}
				}
			}
			if sidecar == nil {
				t.Fatalf("extra.initContainers has no %q container", sidecarName)
			}
			if got := str(sidecar, "restartPolicy"); got != "Always" {
				t.Errorf("sidecar restartPolicy = %q, want Always (native sidecar)", got)
			}
			cfgFile := "falco-scorer.yaml"
			if tt.grpc {
				cfgFile = "falco-scorer-grpc.yaml"
			}
			if !cmKeys[cfgFile] {
				t.Errorf("sidecar reads %s, which the ConfigMap does not hold", cfgFile)
			}
			checkContainer(t, tt.file, sidecar, containerWant{
				nonRoot: !tt.grpc, portName: "scorer-http", volumes: volumes,
				configFile: "/etc/falco-scorer/" + cfgFile,
			})
			if tt.grpc {
				ok := false
				for _, m := range list(sidecar, "volumeMounts") {
					if str(m, "name") == "grpc-socket-dir" && str(m, "mountPath") == socketDir {
						ok = true
					}
				}
				if !ok {
					t.Errorf("sidecar does not mount grpc-socket-dir at %s", socketDir)
				}
			}
		})
	}
}

func TestHelmChartFiles(t *testing.T) {
	dir := "helm/falco-scorer"
	chart := readDocs(t, filepath.Join(dir, "Chart.yaml"))[0]
	for _, k := range []string{"apiVersion", "name", "version", "appVersion"} {
		if str(chart, k) == "" {
			t.Errorf("Chart.yaml lacks %s", k)
		}
	}
	if str(chart, "apiVersion") != "v2" || str(chart, "name") != "falco-scorer" {
		t.Errorf("Chart.yaml apiVersion/name = %s/%s, want v2/falco-scorer", str(chart, "apiVersion"), str(chart, "name"))
	}
	for _, f := range []string{"_helpers.tpl", "daemonset.yaml", "configmap.yaml", "secret.yaml", "service.yaml", "servicemonitor.yaml", "NOTES.txt"} {
		if _, err := os.Stat(filepath.Join(dir, "templates", f)); err != nil {
			t.Errorf("chart template %s: %v", f, err)
		}
	}
	values := readDocs(t, filepath.Join(dir, "values.yaml"))[0]
	cfg, _ := get(values, "config").(obj)
	checkConfigKeys(t, "helm values.yaml config", cfg, exampleConfigKeys(t))
}

// ---------------------------------------------------------------------------
// Rendering with Helm itself.

const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

// kubeVersion is the cluster version charts are rendered for: native
// sidecars (falco-values.yaml) need 1.29, the chart itself 1.26.
const kubeVersion = "1.33.0"

// helmBinary installs Helm from the Go module proxy into a temporary GOBIN
// (the build is cached after the first run) or skips the test when that is
// not possible here.
func helmBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping Helm render in -short mode (first build takes about a minute)")
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", helmModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	cmd.Dir = bin
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build Helm (%s) here, skipping: %v\n%s", helmModule, err, tail(out, 1500))
	}
	return filepath.Join(bin, "helm")
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func runHelm(t *testing.T, helm string, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func TestHelmChartRender(t *testing.T) {
	helm := helmBinary(t)
	chart := filepath.Join("helm", "falco-scorer")
	if out, err := runHelm(t, helm, "lint", "--strict", "--kube-version", kubeVersion, chart); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	ref := exampleConfigKeys(t)
	exampleRules, err := os.ReadFile("config/rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rulesValues := filepath.Join(t.TempDir(), "rules-values.yaml")
	var rv bytes.Buffer
	rv.WriteString("rules:\n")
	for _, l := range strings.Split(string(exampleRules), "\n") {
		if l != "" {
			rv.WriteString("  " + l)
		}
		rv.WriteString("\n")
	}
	if err := os.WriteFile(rulesValues, rv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		args      []string
		wantKinds []string
		workload  string
		dataVol   string // hostPath, persistentVolumeClaim or emptyDir
		nonRoot   bool
	}{
		{"defaults", nil,
			[]string{"ConfigMap", "DaemonSet", "Secret", "Service", "ServiceAccount"}, "DaemonSet", "hostPath", true},
		{"deployment with pvc, servicemonitor, secrets and rules",
			[]string{"--set", "controller.kind=deployment", "--set", "persistence.type=pvc",
				"--set", "serviceMonitor.enabled=true", "--set", "secrets.slackWebhookURL=https://hooks.example/x",
				"--set", "secrets.kafkaPassword=pw", "-f", rulesValues},
			[]string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
			"Deployment", "persistentVolumeClaim", true},
		{"existing secret, emptyDir",
			[]string{"--set", "secrets.existingSecret=mine", "--set", "persistence.type=emptyDir"},
			[]string{"ConfigMap", "DaemonSet", "Service", "ServiceAccount"}, "DaemonSet", "emptyDir", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"template", "fs", chart, "--namespace", "falco", "--kube-version", kubeVersion}, tt.args...)
			out, err := runHelm(t, helm, args...)
			if err != nil {
				t.Fatal(err)
			}
			docs := decodeDocs(t, "rendered "+tt.name, out)
			byKind := map[string]obj{}
			for _, d := range docs {
				checkObjectBasics(t, "rendered", d)
				if ns := str(d, "metadata", "namespace"); ns != "falco" {
					t.Errorf("%s %s namespace = %q, want falco", str(d, "kind"), str(d, "metadata", "name"), ns)
				}
				byKind[str(d, "kind")] = d
			}
			if got := keysOf(byKind); !slices.Equal(got, tt.wantKinds) {
				t.Errorf("rendered kinds = %v, want %v", got, tt.wantKinds)
			}
			w := byKind[tt.workload]
			if w == nil {
				t.Fatalf("no %s rendered", tt.workload)
			}
			pod := get(w, "spec", "template", "spec")
			if get(pod, "automountServiceAccountToken") != false {
				t.Errorf("pod automountServiceAccountToken = %v, want false", get(pod, "automountServiceAccountToken"))
			}
			var volumes []string
			for _, vol := range list(pod, "volumes") {
				volumes = append(volumes, str(vol, "name"))
				if str(vol, "name") == "data" && get(vol, tt.dataVol) == nil {
					t.Errorf("data volume = %v, want %s", vol, tt.dataVol)
				}
			}
			containers := list(pod, "containers")
			if len(containers) != 1 {
				t.Fatalf("containers = %d, want 1", len(containers))
			}
			checkContainer(t, "rendered "+tt.workload, containers[0].(obj), containerWant{
				nonRoot: tt.nonRoot, portName: "http", volumes: volumes,
				configFile: "/etc/falco-scorer/falco-scorer.yaml",
			})
			// Every label the Service selects must be on the pods.
			podLabels, _ := get(w, "spec", "template", "metadata", "labels").(obj)
			for k, v := range get(byKind["Service"], "spec", "selector").(obj) {
				if podLabels[k] != v {
					t.Errorf("Service selects %s=%v, pods have %v", k, v, podLabels[k])
				}
			}
			if sm := byKind["ServiceMonitor"]; sm != nil {
				checkServiceMonitor(t, "rendered", sm, byKind["Service"])
			}
			cm := byKind["ConfigMap"]
			checkConfigKeys(t, "rendered ConfigMap falco-scorer.yaml", decodeOne(t, "rendered config", str(cm, "data", "falco-scorer.yaml")), ref)
			if _, err := rules.Parse([]byte(str(cm, "data", "rules.yaml")), "rendered rules.yaml"); err != nil {
				t.Errorf("rendered rules.yaml does not parse: %v", err)
			}
			if sec := byKind["Secret"]; sec != nil && len(tt.args) > 0 {
				for _, k := range []string{"slack-webhook", "kafka-password"} {
					if get(sec, "data", k) == nil {
						t.Errorf("rendered Secret lacks data.%s", k)
					}
				}
			}
		})
	}

	for _, bad := range [][]string{
		{"--set", "controller.kind=statefulset"},
		{"--set", "persistence.type=pvc"}, // pvc with a DaemonSet
		{"--set", "persistence.type=nfs"},
	} {
		if _, err := runHelm(t, helm, append([]string{"template", "fs", chart, "--kube-version", kubeVersion}, bad...)...); err == nil {
			t.Errorf("helm template %v succeeded, want a failure", bad)
		}
	}
}
