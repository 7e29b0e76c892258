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
	"reflect"
	"regexp"
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
	ingestPort     = 2801 // inputs.http.listen: events from Falco
	adminPort      = 2802 // admin.listen: /healthz, /readyz, /metrics, /api/v1
	configMapName  = "falco-scorer-config"
	secretName     = "falco-scorer-secrets"
	sidecarName    = "falco-scorer"
	adminTokenFile = "/etc/falco-scorer/secrets/admin-token"
)

// Listen addresses of the shipped configurations.
var (
	loopbackIngest = fmt.Sprintf("127.0.0.1:%d", ingestPort)
	anyIngest      = fmt.Sprintf("0.0.0.0:%d", ingestPort)
	anyAdmin       = fmt.Sprintf("0.0.0.0:%d", adminPort)
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

// configWant is what a copy of the service configuration must say for the
// manifests around it to work.
type configWant struct {
	ingest     string // inputs.http.listen; "" when inputs.http.enabled must be false
	admin      string // admin.listen
	adminToken bool   // admin.token_file names the Secret's admin-token
	rulesFile  bool   // rules_file is the mounted /etc/falco-scorer/rules.yaml
	shutdown   string // shutdown_timeout, when the grace period depends on it
}

// checkConfigKeys reports keys of a service configuration copy that the
// example does not have (a typo or a forgotten rename), and checks the few
// values the manifests depend on.
func checkConfigKeys(t *testing.T, name string, cfg obj, ref map[string]bool, w configWant) {
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
	if w.ingest == "" {
		if get(cfg, "inputs", "http", "enabled") != false {
			t.Errorf("%s: inputs.http.enabled = %v, want false (events come over gRPC only)", name, get(cfg, "inputs", "http", "enabled"))
		}
	} else {
		if e := get(cfg, "inputs", "http", "enabled"); e != nil && e != true {
			t.Errorf("%s: inputs.http.enabled = %v, want true", name, e)
		}
		if got := str(cfg, "inputs", "http", "listen"); got != w.ingest {
			t.Errorf("%s: inputs.http.listen = %q, want %q", name, got, w.ingest)
		}
	}
	if got := str(cfg, "admin", "listen"); got != w.admin {
		t.Errorf("%s: admin.listen = %q, want %q (probes and metrics come from outside the pod; ingest stays separate)", name, got, w.admin)
	}
	if got := str(cfg, "admin", "token_file"); w.adminToken && got != adminTokenFile {
		t.Errorf("%s: admin.token_file = %q, want %q (the admin API needs a token on a non-loopback listener)", name, got, adminTokenFile)
	}
	// Falco's http_output cannot send a bearer token: with one, every event
	// would be refused; without the Secret key, the service would not start.
	if tf := get(cfg, "inputs", "http", "token_file"); tf != nil {
		t.Errorf("%s: inputs.http.token_file = %v, want unset (Falco's http_output cannot send a token)", name, tf)
	}
	if got := str(cfg, "data_dir"); got != "/data" {
		t.Errorf("%s: data_dir = %q, want /data (the data volume's mount)", name, got)
	}
	if got := str(cfg, "rules_file"); w.rulesFile && got != "/etc/falco-scorer/rules.yaml" {
		t.Errorf("%s: rules_file = %q, want /etc/falco-scorer/rules.yaml", name, got)
	}
	if w.shutdown != "" {
		if got := str(cfg, "shutdown_timeout"); got != w.shutdown {
			t.Errorf("%s: shutdown_timeout = %q, want %s (the pod's grace period is sized for it)", name, got, w.shutdown)
		}
	}
	if get(cfg, "sinks", "kafka", "sasl") != nil && get(cfg, "sinks", "kafka", "tls", "enabled") != true {
		t.Errorf("%s: sinks.kafka.sasl without tls.enabled: true sends alerts (and PLAIN passwords) in cleartext", name)
	}
}

// ---------------------------------------------------------------------------
// Container checks shared by the sidecar and the Helm chart's workload.

type containerWant struct {
	nonRoot    bool     // runAsNonRoot with a non-zero user
	portName   string   // name of the admin port; probes may use it
	ingestPort bool     // ingest is a container port (false: loopback only)
	volumes    []string // volumes defined in the pod
	configFile string   // expected --config path
	// startupPath is the startup probe's path: /readyz for the http_output
	// sidecar, which Falco (started after it passes) posts to at once;
	// /healthz where readiness needs Falco itself (gRPC) or Falco is elsewhere.
	startupPath string
	// noReadiness: the container must have no readinessProbe (the Falco
	// pod's sidecar: its readiness would become the Falco pod's).
	noReadiness bool
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
	ports := map[any]string{}
	for _, p := range list(c, "ports") {
		ports[get(p, "containerPort")] = str(p, "name")
	}
	if name, ok := ports[adminPort]; !ok || name != w.portName {
		t.Errorf("%s: containerPort %d = %q (present %v), want it named %q", where, adminPort, name, ok, w.portName)
	}
	if _, ok := ports[ingestPort]; ok != w.ingestPort {
		t.Errorf("%s: containerPort %d present = %v, want %v", where, ingestPort, ok, w.ingestPort)
	}
	probes := map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": w.startupPath}
	if w.noReadiness {
		delete(probes, "readinessProbe")
		if get(c, "readinessProbe") != nil {
			t.Errorf("%s: readinessProbe set: a scorer that is not ready would take the Falco pod out of its Services", where)
		}
	}
	for probe, wantPath := range probes {
		p := get(c, probe)
		if p == nil {
			t.Errorf("%s: no %s", where, probe)
			continue
		}
		if got := str(p, "httpGet", "path"); got != wantPath {
			t.Errorf("%s: %s path = %q, want %q", where, probe, got, wantPath)
		}
		if pt := get(p, "httpGet", "port"); pt != adminPort && pt != w.portName {
			t.Errorf("%s: %s port = %v, want the admin port %d or %q", where, probe, pt, adminPort, w.portName)
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
	var froms, runs, copies []string
	var user, expose, entrypoint, volume, cmd, workdir string
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
		case "COPY":
			copies = append(copies, rest)
		case "CMD":
			cmd = rest
		case "WORKDIR":
			workdir = rest // the last one: the final stage's
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
	if want := fmt.Sprintf("%d %d", ingestPort, adminPort); expose != want {
		t.Errorf("EXPOSE = %q, want %q", expose, want)
	}
	if entrypoint != `["/falco-scorer", "serve"]` {
		t.Errorf("ENTRYPOINT = %s, want [\"/falco-scorer\", \"serve\"]", entrypoint)
	}
	if !strings.Contains(volume, "/data") {
		t.Errorf("VOLUME = %q, want /data", volume)
	}
	// distroless :nonroot works in /home/nonroot; ./data must be the volume.
	if workdir != "/" {
		t.Errorf("final WORKDIR = %q, want /", workdir)
	}
	const inImage = "/etc/falco-scorer/falco-scorer.yaml"
	if !slices.Contains(copies, "deploy/config/container.yaml "+inImage) {
		t.Errorf("COPY lines = %v, want deploy/config/container.yaml copied to %s", copies, inImage)
	}
	if want := `["--config", "` + inImage + `"]`; cmd != want {
		t.Errorf("CMD = %s, want %s", cmd, want)
	}
}

// TestContainerConfig checks the image's built-in configuration: inside a
// container, loopback is unreachable through `docker run -p`, and the data
// must land on the /data volume.
func TestContainerConfig(t *testing.T) {
	b, err := os.ReadFile("config/container.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := decodeOne(t, "config/container.yaml", string(b))
	checkConfigKeys(t, "config/container.yaml", cfg, exampleConfigKeys(t),
		configWant{ingest: anyIngest, admin: anyAdmin})
}

// TestDockerignore checks that the build context leaves out what the build
// does not need and keeps what go:embed does.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("read ../.dockerignore: %v (docker build -f deploy/Dockerfile . sends the whole tree)", err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	for _, want := range []string{".git", "bin", "data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore = %v, want %q excluded", patterns, want)
		}
	}
	// Needed by the build: module files, sources, embedded files, and the
	// in-image config.
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "rules", "sinks", "scorer", "store",
		"rules/falco-scorer_rules.yaml", "sinks/alert.schema.json", "scorer/evaluate/lab/testdata",
		"deploy", "deploy/config", "deploy/config/container.yaml"} {
		for _, p := range patterns {
			if ok, _ := path.Match(p, keep); ok || p == keep {
				t.Errorf(".dockerignore pattern %q excludes %s, which the image build needs", p, keep)
			}
		}
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
	want := []string{"admin", "data_dir", "delivery", "inputs", "log", "memory_limit_mib", "rules_file",
		"scorer", "shutdown_timeout", "sinks", "store"}
	if !slices.Equal(top, want) {
		t.Errorf("top-level keys = %v, want %v", top, want)
	}
	b, _ := os.ReadFile("config/falco-scorer.example.yaml")
	cfg := decodeOne(t, "example", string(b))
	checkConfigKeys(t, "config/falco-scorer.example.yaml", cfg, keys,
		configWant{ingest: loopbackIngest, admin: anyAdmin, adminToken: true, rulesFile: true, shutdown: "20s"})
	for _, k := range []string{"sinks.kafka.sasl.password_file", "sinks.slack.webhook_url_file", "admin.token_file"} {
		if !keys[k] {
			t.Errorf("example config lacks %s: secrets must come from files", k)
		}
	}
	// The ingest token stays a comment: Falco cannot send it.
	if !strings.Contains(string(b), "# token_file: /etc/falco-scorer/secrets/ingest-token") {
		t.Errorf("example config: want inputs.http.token_file shown commented out")
	}
	// Values that differ from the built-in defaults are marked, the others
	// are the defaults (sinks/kafka DefaultConfig).
	for k, v := range map[string]string{"topic": "falco-scorer.alerts", "compression": "snappy"} {
		if got := str(cfg, "sinks", "kafka", k); got != v {
			t.Errorf("example sinks.kafka.%s = %q, want the default %q", k, got, v)
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
		// Sidecars: Falco posts over the pod's loopback (http) or the
		// socket (gRPC); kubelet and Prometheus use the admin listener.
		// The pod's grace period is the default 30 s, shared with Falco.
		w := configWant{ingest: loopbackIngest, admin: anyAdmin, adminToken: true, rulesFile: true, shutdown: "15s"}
		if grpc {
			w.ingest = ""
		}
		checkConfigKeys(t, "ConfigMap "+key, cfg, ref, w)
		if got := get(cfg, "inputs", "grpc", "enabled"); got != grpc {
			t.Errorf("ConfigMap %s: inputs.grpc.enabled = %v, want %v", key, got, grpc)
		}
		for _, f := range []any{get(cfg, "sinks", "kafka", "sasl", "password_file"), get(cfg, "sinks", "slack", "webhook_url_file"), get(cfg, "admin", "token_file")} {
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
	if got := get(svc, "spec", "ports", 0, "targetPort"); got != adminPort {
		t.Errorf("Service targetPort = %v, want the admin port %d", got, adminPort)
	}
	if got := get(svc, "spec", "ports", 0, "port"); got != adminPort {
		t.Errorf("Service port = %v, want %d", got, adminPort)
	}
}

// alertRulesFile holds the alerting rules once; the sidecar manifest and
// the chart's PrometheusRule carry exactly its groups.
const alertRulesFile = "helm/falco-scorer/files/prometheus-rules.yaml"

func TestAlertRules(t *testing.T) {
	const file = "kubernetes/falco-scorer-alerts.yaml"
	docs := readDocs(t, file)
	if len(docs) != 1 || str(docs[0], "kind") != "PrometheusRule" || str(docs[0], "apiVersion") != "monitoring.coreos.com/v1" {
		t.Fatalf("%s: want one monitoring.coreos.com/v1 PrometheusRule, got %d documents", file, len(docs))
	}
	checkObjectBasics(t, file, docs[0])
	checkAlertRules(t, file, docs[0])
}

// checkAlertRules checks that a PrometheusRule's spec is the rules file's,
// and that every rule is complete.
func checkAlertRules(t *testing.T, where string, pr obj) {
	t.Helper()
	want := readDocs(t, alertRulesFile)
	if len(want) != 1 {
		t.Fatalf("%s: want one document", alertRulesFile)
	}
	if !reflect.DeepEqual(get(pr, "spec"), want[0]) {
		t.Errorf("%s: spec differs from %s; keep them equal", where, alertRulesFile)
	}
	rules := list(want[0], "groups", 0, "rules")
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", alertRulesFile)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		name := str(r, "alert")
		if name == "" || seen[name] {
			t.Errorf("%s: rule without a unique alert name: %v", alertRulesFile, r)
		}
		seen[name] = true
		if str(r, "expr") == "" {
			t.Errorf("%s: %s has no expr", alertRulesFile, name)
		}
		if sev := str(r, "labels", "severity"); sev != "warning" && sev != "critical" {
			t.Errorf("%s: %s severity = %q, want warning or critical", alertRulesFile, name, sev)
		}
		if str(r, "annotations", "summary") == "" || str(r, "annotations", "description") == "" {
			t.Errorf("%s: %s needs a summary and a description", alertRulesFile, name)
		}
	}
}

// TestSidecarNetworkPolicy checks the optional NetworkPolicy for the Falco
// pods: it selects the pods the monitoring Service selects and opens the
// admin port, never the ingest port (loopback only in the sidecars).
func TestSidecarNetworkPolicy(t *testing.T) {
	const file = "kubernetes/falco-scorer-networkpolicy.yaml"
	docs := readDocs(t, file)
	if len(docs) != 1 || str(docs[0], "kind") != "NetworkPolicy" {
		t.Fatalf("%s: want one NetworkPolicy, got %d documents", file, len(docs))
	}
	np := docs[0]
	checkObjectBasics(t, file, np)
	if got := str(np, "apiVersion"); got != "networking.k8s.io/v1" {
		t.Errorf("apiVersion = %q, want networking.k8s.io/v1", got)
	}
	var svc obj
	for _, d := range readDocs(t, "kubernetes/falco-scorer-monitoring.yaml") {
		if str(d, "kind") == "Service" {
			svc = d
		}
	}
	sel, _ := get(np, "spec", "podSelector", "matchLabels").(obj)
	for k, v := range get(svc, "spec", "selector").(obj) {
		if sel[k] != v {
			t.Errorf("podSelector %s = %v, want %v (the Falco pods, as the monitoring Service selects them)", k, sel[k], v)
		}
	}
	if types := list(np, "spec", "policyTypes"); !slices.Equal(types, []any{"Ingress"}) {
		t.Errorf("policyTypes = %v, want [Ingress]", types)
	}
	var ports []any
	for _, r := range list(np, "spec", "ingress") {
		for _, p := range list(r, "ports") {
			ports = append(ports, get(p, "port"))
		}
	}
	if !slices.Contains(ports, any(adminPort)) {
		t.Errorf("ingress ports = %v, want %d (metrics)", ports, adminPort)
	}
	if slices.Contains(ports, any(ingestPort)) {
		t.Errorf("ingress ports = %v: %d is loopback-only in the sidecars", ports, ingestPort)
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
		file, sidecar string
		grpc          bool
	}{
		{"kubernetes/falco-values.yaml", "kubernetes/falco-scorer-sidecar.yaml", false},
		{"kubernetes/falco-values-grpc.yaml", "kubernetes/falco-scorer-sidecar-grpc.yaml", true},
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
			// The chart's default "first" lets stock rules shadow the
			// observation rules loaded after them.
			if got := str(v, "falco", "rule_matching"); got != "all" {
				t.Errorf("falco.rule_matching = %q, want all (observations must not be shadowed by stock rules)", got)
			}
			for _, out := range []string{"stdout_output", "syslog_output"} {
				if get(v, "falco", out, "enabled") != false {
					t.Errorf("falco.%s.enabled = %v, want false (every observation is a Debug alert)", out, get(v, "falco", out, "enabled"))
				}
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
				if got, want := str(v, "falco", "http_output", "url"), fmt.Sprintf("http://%s/", loopbackIngest); got != want {
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
			// Never block Falco: no init container at all (every init
			// container, native sidecar or not, gates Falco's start).
			if ic := get(v, "extra", "initContainers"); ic != nil {
				t.Errorf("extra.initContainers = %v, want none: an init container that cannot be pulled or exits keeps Falco from starting", ic)
			}
			sc := readDocs(t, tt.sidecar)
			if len(sc) != 1 {
				t.Fatalf("%s: %d documents, want 1", tt.sidecar, len(sc))
			}
			var sidecar obj
			for _, c := range list(sc[0], "containers") {
				if str(c, "name") == sidecarName {
					sidecar, _ = c.(obj)
				}
			}
			if sidecar == nil {
				t.Fatalf("%s: containers has no %q container", tt.sidecar, sidecarName)
			}
			if rp := get(sidecar, "restartPolicy"); rp != nil {
				t.Errorf("sidecar restartPolicy = %v, want none (an ordinary container, not a native sidecar)", rp)
			}
			cfgFile := "falco-scorer.yaml"
			if tt.grpc {
				cfgFile = "falco-scorer-grpc.yaml"
			}
			if !cmKeys[cfgFile] {
				t.Errorf("sidecar reads %s, which the ConfigMap does not hold", cfgFile)
			}
			checkContainer(t, tt.sidecar, sidecar, containerWant{
				portName: "scorer-admin", volumes: volumes, noReadiness: true,
				configFile: "/etc/falco-scorer/" + cfgFile, startupPath: "/healthz",
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

// TestFalcoSettingsInDocs checks that every place that shows a Falco
// configuration for falco-scorer also sets rule_matching: all.
func TestFalcoSettingsInDocs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Each ```yaml block starting with "# falco.yaml" in the README.
	n := 0
	for _, block := range strings.Split(string(readme), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.HasPrefix(block, "# falco.yaml") {
			continue
		}
		n++
		cfg := decodeOne(t, "README.md falco.yaml snippet", block)
		if got := str(cfg, "rule_matching"); got != "all" {
			t.Errorf("README.md falco.yaml snippet %d: rule_matching = %q, want all", n, got)
		}
		if p := strings.ToLower(str(cfg, "priority")); p != "debug" {
			t.Errorf("README.md falco.yaml snippet %d: priority = %q, want debug", n, p)
		}
	}
	if n < 2 {
		t.Errorf("README.md: %d falco.yaml snippets found, want 2 (http_output and gRPC)", n)
	}
	for _, f := range []string{"helm/falco-scorer/templates/NOTES.txt", "helm/falco-scorer/values.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "rule_matching: all") {
			t.Errorf("%s shows Falco's settings without rule_matching: all", f)
		}
	}
}

// graceSeconds parses a Go duration of whole seconds from a config value.
func graceSeconds(t *testing.T, what, v string) int {
	t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, v, err)
	}
	return int(d / time.Second)
}

// shutdownSlack is how long the service may take after shutdown_timeout:
// the sinks' bounded wait and close, then the store's close.
const shutdownSlack = 15

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
	for _, f := range []string{"_helpers.tpl", "daemonset.yaml", "configmap.yaml", "secret.yaml", "service.yaml", "servicemonitor.yaml", "prometheusrule.yaml", "networkpolicy.yaml", "NOTES.txt"} {
		if _, err := os.Stat(filepath.Join(dir, "templates", f)); err != nil {
			t.Errorf("chart template %s: %v", f, err)
		}
	}
	values := readDocs(t, filepath.Join(dir, "values.yaml"))[0]
	cfg, _ := get(values, "config").(obj)
	// Standalone: Falco posts through the Service, so ingest listens on all
	// interfaces (the NetworkPolicy admits only Falco).
	checkConfigKeys(t, "helm values.yaml config", cfg, exampleConfigKeys(t),
		configWant{ingest: anyIngest, admin: anyAdmin, adminToken: true, rulesFile: true})
	grace, _ := get(values, "terminationGracePeriodSeconds").(int)
	if grace != 45 {
		t.Errorf("values terminationGracePeriodSeconds = %v, want 45", get(values, "terminationGracePeriodSeconds"))
	}
	if st := graceSeconds(t, "config.shutdown_timeout", str(cfg, "shutdown_timeout")); grace < st+shutdownSlack {
		t.Errorf("terminationGracePeriodSeconds %d < config.shutdown_timeout %ds + %ds", grace, st, shutdownSlack)
	}
	if got := str(values, "service", "internalTrafficPolicy"); got != "" {
		t.Errorf("service.internalTrafficPolicy = %q, want empty (derived from controller.kind)", got)
	}
	if get(values, "networkPolicy", "enabled") != true {
		t.Errorf("networkPolicy.enabled = %v, want true", get(values, "networkPolicy", "enabled"))
	}
	if got := str(values, "networkPolicy", "ingest", "podSelector", "matchLabels", "app.kubernetes.io/name"); got != "falco" {
		t.Errorf("networkPolicy.ingest.podSelector app.kubernetes.io/name = %q, want falco (the falcosecurity/falco chart's pods)", got)
	}
	if get(values, "secrets", "adminToken") == nil {
		t.Errorf("values lack secrets.adminToken")
	}
}

// ---------------------------------------------------------------------------
// Loading the shipped configurations with the service itself is
// cmd/falco-scorer's TestShippedConfigsLoad (in-process: the example, the
// image's built-in config, both sidecar configs and the chart's default
// config), which a change to the config and its manifests both reach.

// TestAlertRulesPromtool checks the alerting rules with promtool and runs
// their unit tests (testdata/prometheus-rules_test.yaml). It needs promtool
// on PATH: building it fetches about 2 GB of modules, too much for every CI
// run; `make check-alerts` builds and runs it. TestAlertRules and
// cmd/falco-scorer's TestAlertRulesUseServiceMetrics always run.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH; run make check-alerts")
	}
	for _, args := range [][]string{
		{"check", "rules", alertRulesFile},
		{"test", "rules", "testdata/prometheus-rules_test.yaml"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestReadmeSteps keeps deploy/README.md's install steps in line with what
// make check-deploy renders: the same values, sidecar file and
// post-renderer, the chart version that is vendored, and files that exist.
func TestReadmeSteps(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, want := range []string{
		"-f deploy/kubernetes/falco-values.yaml",
		"--post-renderer ./bin/inject-sidecar --post-renderer-args deploy/kubernetes/falco-scorer-sidecar.yaml",
		"go build -o bin/inject-sidecar ./cmd/inject-sidecar",
		"--version 9.1.0",
		"--data @deploy/testdata/test-event.json http://127.0.0.1:2801/",
		"make image",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
	// Every repository path the README names exists.
	paths := 0
	// (cmd/crane in a module path is not one: only paths after a space,
	// a parenthesis or a backquote.)
	for _, m := range regexp.MustCompile("(?:^|[\\s(`@])((?:deploy|cmd)/[A-Za-z0-9_./-]+[A-Za-z0-9_])").FindAllStringSubmatch(readme, -1) {
		f := m[1]
		paths++
		if _, err := os.Stat(filepath.Join("..", f)); err != nil {
			t.Errorf("README.md names %s: %v", f, err)
		}
	}
	if paths < 10 {
		t.Errorf("README.md: found %d repository paths, want the install steps' files", paths)
	}
	ev := decodeOne(t, "test-event.json", func() string { b, _ := os.ReadFile("testdata/test-event.json"); return string(b) }())
	if str(ev, "rule") == "" || get(ev, "output_fields") == nil {
		t.Errorf("test-event.json = %v, want a Falco event with rule and output_fields", ev)
	}
}
