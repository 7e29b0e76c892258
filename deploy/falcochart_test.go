//go:build deploy

package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/rules"
)

// falcoChartVersion is the vendored falcosecurity/falco chart the values
// files are rendered with.
const falcoChartVersion = "9.1.0"

// falcoCharts finds the vendored falcosecurity charts: $FALCO_CHARTS, or
// shared/vendor/falcosecurity-charts beside the repository (where CI lays
// shared/). Missing charts fail the test.
func falcoCharts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FALCO_CHARTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "vendor", "falcosecurity-charts")
	}
	if _, err := os.Stat(filepath.Join(dir, "falco", "Chart.yaml")); err != nil {
		t.Fatalf("falcosecurity charts not found at %s (set FALCO_CHARTS): %v", dir, err)
	}
	return dir
}

// falcoChart copies the falco chart with its dependencies in charts/, as
// `helm dependency build` would lay them, into a temporary directory.
func falcoChart(t *testing.T) string {
	t.Helper()
	src := falcoCharts(t)
	dst := filepath.Join(t.TempDir(), "falco")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(src, "falco"))); err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{"falcosidekick", "k8s-metacollector", "falco-talon"} {
		if err := os.CopyFS(filepath.Join(dst, "charts", dep), os.DirFS(filepath.Join(src, dep))); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dst, "Chart.yaml"))
	if !strings.Contains(string(b), "version: "+falcoChartVersion) {
		t.Fatalf("vendored falco chart is not %s", falcoChartVersion)
	}
	return dst
}

// injectSidecarBinary builds the post-renderer.
func injectSidecarBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inject-sidecar")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/inject-sidecar")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build inject-sidecar: %v\n%s", err, out)
	}
	return bin
}

// podOf returns the pod spec of the Falco workload.
func falcoWorkload(t *testing.T, docs []obj) obj {
	t.Helper()
	for _, d := range docs {
		if k := str(d, "kind"); k != "DaemonSet" && k != "Deployment" {
			continue
		}
		for _, c := range list(d, "spec", "template", "spec", "containers") {
			if str(c, "name") == "falco" {
				return d
			}
		}
	}
	t.Fatal("no Falco DaemonSet or Deployment rendered")
	return nil
}

func containerNamed(pod any, field, name string) obj {
	for _, c := range list(pod, field) {
		if str(c, "name") == name {
			m, _ := c.(obj)
			return m
		}
	}
	return nil
}

func names(l []any) []string {
	var out []string
	for _, c := range l {
		out = append(out, str(c, "name"))
	}
	return out
}

// TestFalcoChartRender renders the real falco chart with each values file
// and checks that falco-scorer is wired into it and can never keep Falco
// from starting.
func TestFalcoChartRender(t *testing.T) {
	helm := helmBinary(t)
	chart := falcoChart(t)
	inject := injectSidecarBinary(t)
	base := []string{"template", "falco", chart, "--namespace", "falco", "--kube-version", kubeVersion}

	// helm lint --strict of the chart with our values.
	if out, err := runHelm(t, helm, "lint", "--strict", "--kube-version", kubeVersion, chart,
		"-f", "kubernetes/falco-values.yaml"); err != nil {
		t.Errorf("helm lint --strict falco chart with falco-values.yaml: %v\n%s", err, out)
	}

	// The chart's own defaults: the init containers the scorer must not add to.
	defOut, err := runHelm(t, helm, base...)
	if err != nil {
		t.Fatal(err)
	}
	defPod := get(falcoWorkload(t, decodeDocs(t, "falco defaults", defOut)), "spec", "template", "spec")
	defInit := names(list(defPod, "initContainers"))

	scorerCfg := map[string]obj{}
	for _, d := range readDocs(t, "kubernetes/falco-scorer-config.yaml") {
		if str(d, "kind") == "ConfigMap" {
			for k, v := range get(d, "data").(obj) {
				if strings.HasSuffix(k, ".yaml") && k != "rules.yaml" {
					scorerCfg[k] = decodeOne(t, k, v.(string))
				}
			}
		}
	}
	tests := []struct {
		name  string
		extra []string
	}{
		{"http_output sidecar", nil},
		// falcosidekick (2801) and falco-talon (2803) in the same release:
		// their ports must not clash with the scorer's.
		{"with falcosidekick and falco-talon", []string{"--set", "falcosidekick.enabled=true", "--set", "responseActions.enabled=true"}},
		{"deployment", []string{"--set", "controller.kind=deployment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(slices.Clone(base), "-f", "kubernetes/falco-values.yaml",
				"--post-renderer", inject, "--post-renderer-args", "kubernetes/falco-scorer-sidecar.yaml")
			out, err := runHelm(t, helm, append(args, tt.extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			docs := decodeDocs(t, tt.name, out)
			checkOpenAPI(t, "falco chart "+tt.name, docs)
			w := falcoWorkload(t, docs)
			pod := get(w, "spec", "template", "spec")

			// Never block Falco: the scorer is an ordinary container, the
			// init containers are exactly the chart's own, and nothing of
			// the scorer's gates the pod (no readiness probe, no restart
			// policy of its own).
			scorer := containerNamed(pod, "containers", sidecarName)
			if scorer == nil {
				t.Fatalf("Falco pod containers = %v, want falco-scorer among them", names(list(pod, "containers")))
			}
			if got := names(list(pod, "initContainers")); !slices.Equal(got, defInit) {
				t.Errorf("Falco pod initContainers = %v, want the chart's own %v: an init container gates Falco's start", got, defInit)
			}
			if containerNamed(pod, "initContainers", sidecarName) != nil {
				t.Errorf("falco-scorer is an init container: it would gate Falco's start")
			}
			if get(scorer, "readinessProbe") != nil {
				t.Errorf("falco-scorer has a readinessProbe: the Falco pod's readiness would depend on it")
			}
			if get(scorer, "restartPolicy") != nil || get(scorer, "lifecycle") != nil {
				t.Errorf("falco-scorer restartPolicy/lifecycle = %v/%v, want none", get(scorer, "restartPolicy"), get(scorer, "lifecycle"))
			}
			falco := containerNamed(pod, "containers", "falco")
			for _, e := range list(falco, "env") {
				if strings.Contains(fmt.Sprint(e), "falco-scorer") {
					t.Errorf("falco container env %v depends on falco-scorer", e)
				}
			}

			// Shared volumes: every mount of the scorer is a pod volume,
			// the data a hostPath, the config the scorer's ConfigMap.
			vols := map[string]obj{}
			for _, v := range list(pod, "volumes") {
				vols[str(v, "name")], _ = v.(obj)
			}
			for _, m := range list(scorer, "volumeMounts") {
				if vols[str(m, "name")] == nil {
					t.Errorf("falco-scorer mounts %q, which the Falco pod does not define", str(m, "name"))
				}
			}
			if str(vols["falco-scorer-data"], "hostPath", "path") == "" {
				t.Errorf("falco-scorer-data = %v, want a hostPath", vols["falco-scorer-data"])
			}
			if got := str(vols["falco-scorer-config"], "configMap", "name"); got != configMapName {
				t.Errorf("falco-scorer-config volume uses ConfigMap %q, want %q", got, configMapName)
			}

			// Falco's own configuration as rendered by the chart.
			var falcoYAML, rulesCM obj
			for _, d := range docs {
				if str(d, "kind") != "ConfigMap" {
					continue
				}
				if s := str(d, "data", "falco.yaml"); s != "" {
					falcoYAML = decodeOne(t, "falco.yaml", s)
				}
				if get(d, "data", "falco-scorer_rules.yaml") != nil {
					rulesCM = d
				}
			}
			if falcoYAML == nil {
				t.Fatal("no ConfigMap with falco.yaml rendered")
			}
			url := str(falcoYAML, "http_output", "url")
			wantURL := fmt.Sprintf("http://%s/", loopbackIngest)
			// Also with falcosidekick enabled in the release: the chart's
			// helper means to point http_output at it, but the values'
			// url stays (chart 9.1.0); the values file says so.
			if get(falcoYAML, "http_output", "enabled") != true || url != wantURL {
				t.Errorf("falco.yaml http_output = %v, want enabled to %s", get(falcoYAML, "http_output"), wantURL)
			}
			// ...and the scorer listens there.
			if got := str(scorerCfg["falco-scorer.yaml"], "inputs", "http", "listen"); got != loopbackIngest {
				t.Errorf("falco-scorer.yaml inputs.http.listen = %q, want %s (http_output's target)", got, loopbackIngest)
			}
			for k, want := range map[string]any{"json_output": true, "rule_matching": "all", "priority": "debug"} {
				if got := get(falcoYAML, k); got != want {
					t.Errorf("falco.yaml %s = %v, want %v", k, got, want)
				}
			}

			// The observation rules: in a ConfigMap, mounted into the
			// Falco container at a path falco.yaml loads.
			if rulesCM == nil {
				t.Fatal("no ConfigMap holds falco-scorer_rules.yaml")
			}
			if got := str(rulesCM, "data", "falco-scorer_rules.yaml"); strings.TrimSpace(got) != strings.TrimSpace(string(rules.FalcoRules())) {
				t.Errorf("rendered falco-scorer_rules.yaml differs from rules/falco-scorer_rules.yaml")
			}
			rulesVol := ""
			for n, v := range vols {
				if str(v, "configMap", "name") == str(rulesCM, "metadata", "name") {
					rulesVol = n
				}
			}
			mountedAt := ""
			for _, m := range list(falco, "volumeMounts") {
				if str(m, "name") == rulesVol {
					mountedAt = str(m, "mountPath")
				}
			}
			loaded := false
			for _, f := range list(falcoYAML, "rules_files") {
				if s, _ := f.(string); mountedAt != "" && (s == mountedAt || s == mountedAt+"/falco-scorer_rules.yaml") {
					loaded = true
				}
			}
			if !loaded {
				t.Errorf("observation rules: volume %q mounted in falco at %q, rules_files %v: not loaded", rulesVol, mountedAt, get(falcoYAML, "rules_files"))
			}

			// Ports: nothing listens twice in the Falco pod (shared
			// network namespace), and falcosidekick (2801) and falco-talon
			// (2803) run in pods of their own, never on the host network
			// beside the Falco pod.
			checkPorts(t, docs, w, scorerCfg["falco-scorer.yaml"], falcoYAML)
		})
	}

	// gRPC (Falco <= 0.43) needs the falco chart 8.0.x: 9.x refuses the
	// values file, as its header says.
	t.Run("grpc values refused by chart 9", func(t *testing.T) {
		_, err := runHelm(t, helm, append(slices.Clone(base), "-f", "kubernetes/falco-values-grpc.yaml")...)
		if err == nil || !strings.Contains(err.Error(), "falco.grpc") {
			t.Errorf("falco chart %s with falco-values-grpc.yaml: err = %v, want the chart to refuse falco.grpc", falcoChartVersion, err)
		}
	})
}

// checkPorts fails on a port two things of one network namespace listen on.
func checkPorts(t *testing.T, docs []obj, falcoWL obj, scorerCfg, falcoYAML obj) {
	t.Helper()
	pod := get(falcoWL, "spec", "template", "spec")
	used := map[int]string{}
	add := func(port int, who string) {
		if port == 0 {
			return
		}
		if prev, ok := used[port]; ok {
			t.Errorf("Falco pod: port %d used by %s and %s", port, prev, who)
		}
		used[port] = who
	}
	for _, c := range list(pod, "containers") {
		for _, p := range list(c, "ports") {
			n, _ := get(p, "containerPort").(int)
			if str(c, "name") == sidecarName && n == adminPort {
				continue // counted from the config below
			}
			add(n, str(c, "name")+" containerPort")
		}
	}
	for _, k := range [][]string{{"inputs", "http", "listen"}, {"admin", "listen"}} {
		var a []any
		for _, s := range k {
			a = append(a, s)
		}
		addr := str(scorerCfg, a...)
		var port int
		if _, p, ok := strings.Cut(addr, ":"); ok {
			fmt.Sscan(p, &port)
		}
		add(port, "falco-scorer "+strings.Join(k, "."))
	}
	if get(falcoYAML, "webserver", "enabled") == true {
		if p, ok := get(falcoYAML, "webserver", "listen_port").(int); ok && used[p] != "" && !strings.HasPrefix(used[p], "falco ") {
			t.Errorf("Falco webserver port %d also used by %s", p, used[p])
		}
	}
	hostNet := get(pod, "hostNetwork") == true
	for _, d := range docs {
		k := str(d, "kind")
		if k != "Deployment" && k != "DaemonSet" || d["metadata"] == nil || str(d, "metadata", "name") == str(falcoWL, "metadata", "name") {
			continue
		}
		other := get(d, "spec", "template", "spec")
		for _, c := range list(other, "containers") {
			for _, p := range list(c, "ports") {
				n, _ := get(p, "containerPort").(int)
				if who, clash := used[n]; clash && hostNet && get(other, "hostNetwork") == true {
					t.Errorf("%s/%s port %d clashes on the host network with %s", k, str(d, "metadata", "name"), n, who)
				}
				if n == ingestPort || n == adminPort {
					t.Logf("%s/%s container %s also uses port %d, in its own pod (no clash)", k, str(d, "metadata", "name"), str(c, "name"), n)
				}
			}
		}
	}
}
