//go:build deploy

// Rendering the chart with Helm itself: `make check-deploy` runs this (CI
// too). It builds Helm from the Go module proxy, which takes minutes on a
// cold build cache, so it is behind the deploy build tag instead of in
// `make test`; where it runs, a Helm that cannot be built is a failure,
// not a skip.

package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/rules"
)

// helmModule is the Helm that renders the chart (make check-deploy).
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

// kubeVersion is the cluster version charts are rendered for: native
// sidecars (falco-values.yaml) need 1.29, the chart itself 1.26.
const kubeVersion = "1.33.0"

// helmBinary installs Helm from the Go module proxy into a temporary GOBIN
// (compiled packages stay in the build cache, so later runs only link).
// A failure fails the test: check-deploy exists to run it.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", helmModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	cmd.Dir = bin
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", helmModule, err, tail(out, 1500))
	}
	t.Logf("go install %s: %s", helmModule, time.Since(start).Round(time.Second))
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

// checkChartNetworkPolicy checks the chart's NetworkPolicy: it selects the
// workload's pods, admits ingest only from the Falco pods, and the admin
// port from adminFrom's namespaces (nil: any source).
func checkChartNetworkPolicy(t *testing.T, np, workload obj, adminFrom []string, ingestNS string) {
	t.Helper()
	podLabels, _ := get(workload, "spec", "template", "metadata", "labels").(obj)
	sel, _ := get(np, "spec", "podSelector", "matchLabels").(obj)
	if len(sel) == 0 {
		t.Errorf("NetworkPolicy podSelector is empty: it would cover every pod of the namespace")
	}
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("NetworkPolicy selects %s=%v, pods have %v", k, v, podLabels[k])
		}
	}
	rules := map[any]obj{}
	for _, r := range list(np, "spec", "ingress") {
		ports := list(r, "ports")
		if len(ports) != 1 {
			t.Errorf("NetworkPolicy rule %v: want one port per rule", r)
			continue
		}
		rules[get(ports[0], "port")], _ = r.(obj)
	}
	if len(rules) != 2 || rules["http"] == nil || rules["http-admin"] == nil {
		t.Fatalf("NetworkPolicy rules by port = %v, want http and http-admin", keysOfAny(rules))
	}
	from := list(rules["http"], "from")
	if len(from) != 1 {
		t.Fatalf("ingest rule from = %v, want the Falco pods only", from)
	}
	if got := str(from[0], "podSelector", "matchLabels", "app.kubernetes.io/name"); got != "falco" {
		t.Errorf("ingest rule podSelector app.kubernetes.io/name = %q, want falco", got)
	}
	ns := get(from[0], "namespaceSelector")
	switch {
	case ingestNS == "" && ns != nil:
		t.Errorf("ingest rule namespaceSelector = %v, want none (the release's namespace)", ns)
	case ingestNS != "" && str(ns, "matchLabels", "kubernetes.io/metadata.name") != ingestNS:
		t.Errorf("ingest rule namespaceSelector = %v, want namespace %s", ns, ingestNS)
	}
	var gotFrom []string
	for _, p := range list(rules["http-admin"], "from") {
		gotFrom = append(gotFrom, str(p, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"))
	}
	if !slices.Equal(gotFrom, adminFrom) {
		t.Errorf("admin rule from namespaces = %v, want %v", gotFrom, adminFrom)
	}
}

func keysOfAny(m map[any]obj) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprint(k))
	}
	sort.Strings(out)
	return out
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
		itp       string   // the Service's internalTrafficPolicy
		adminFrom []string // namespaces allowed on the admin port; nil: any
		ingestNS  string   // namespace of the Falco pods in the ingest rule; "": the release's
	}{
		{"defaults", nil,
			[]string{"ConfigMap", "DaemonSet", "NetworkPolicy", "Secret", "Service", "ServiceAccount"}, "DaemonSet", "hostPath", true,
			"Local", []string{"monitoring"}, ""},
		{"deployment with pvc",
			[]string{"--set", "controller.kind=deployment", "--set", "persistence.type=pvc"},
			[]string{"ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount"},
			"Deployment", "persistentVolumeClaim", true, "Cluster", []string{"monitoring"}, ""},
		{"deployment with pvc, servicemonitor, secrets and rules",
			[]string{"--set", "controller.kind=deployment", "--set", "persistence.type=pvc",
				"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
				"--set", "secrets.slackWebhookURL=https://hooks.example/x",
				"--set", "secrets.kafkaPassword=pw", "--set", "secrets.adminToken=tok", "-f", rulesValues},
			[]string{"ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
			"Deployment", "persistentVolumeClaim", true, "Cluster", []string{"monitoring"}, ""},
		{"existing secret, emptyDir, network policy options",
			[]string{"--set", "secrets.existingSecret=mine", "--set", "persistence.type=emptyDir",
				"--set", "networkPolicy.admin.from=null",
				"--set", "networkPolicy.ingest.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=security"},
			[]string{"ConfigMap", "DaemonSet", "NetworkPolicy", "Service", "ServiceAccount"}, "DaemonSet", "emptyDir", true,
			"Local", nil, "security"},
		{"no network policy",
			[]string{"--set", "networkPolicy.enabled=false"},
			[]string{"ConfigMap", "DaemonSet", "Secret", "Service", "ServiceAccount"}, "DaemonSet", "hostPath", true,
			"Local", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"template", "fs", chart, "--namespace", "falco", "--kube-version", kubeVersion}, tt.args...)
			out, err := runHelm(t, helm, args...)
			if err != nil {
				t.Fatal(err)
			}
			docs := decodeDocs(t, "rendered "+tt.name, out)
			checkOpenAPI(t, "rendered "+tt.name, docs)
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
				nonRoot: tt.nonRoot, portName: "http-admin", ingestPort: true, volumes: volumes,
				configFile: "/etc/falco-scorer/falco-scorer.yaml", startupPath: "/healthz",
			})
			if got := get(pod, "terminationGracePeriodSeconds"); got != 45 {
				t.Errorf("terminationGracePeriodSeconds = %v, want 45", got)
			}
			if tt.workload == "Deployment" {
				if got := get(w, "spec", "replicas"); got != 1 {
					t.Errorf("Deployment replicas = %v, want 1", got)
				}
			}
			svc := byKind["Service"]
			if got := str(svc, "spec", "internalTrafficPolicy"); got != tt.itp {
				t.Errorf("Service internalTrafficPolicy = %q, want %q", got, tt.itp)
			}
			svcPorts := map[string]obj{}
			for _, p := range list(svc, "spec", "ports") {
				svcPorts[str(p, "name")], _ = p.(obj)
			}
			for name, num := range map[string]int{"http": ingestPort, "http-admin": adminPort} {
				if p := svcPorts[name]; get(p, "port") != num || get(p, "targetPort") != name {
					t.Errorf("Service port %s = %v, want port %d, targetPort %s", name, p, num, name)
				}
			}
			if np := byKind["NetworkPolicy"]; np != nil {
				checkChartNetworkPolicy(t, np, w, tt.adminFrom, tt.ingestNS)
			}
			// Every label the Service selects must be on the pods.
			podLabels, _ := get(w, "spec", "template", "metadata", "labels").(obj)
			for k, v := range get(byKind["Service"], "spec", "selector").(obj) {
				if podLabels[k] != v {
					t.Errorf("Service selects %s=%v, pods have %v", k, v, podLabels[k])
				}
			}
			if sm := byKind["ServiceMonitor"]; sm != nil {
				checkServiceMonitor(t, "rendered", sm, svc)
				if got := str(sm, "spec", "endpoints", 0, "port"); got != "http-admin" {
					t.Errorf("ServiceMonitor port = %q, want http-admin (/metrics is on admin.listen)", got)
				}
			}
			if pr := byKind["PrometheusRule"]; pr != nil {
				checkAlertRules(t, "rendered PrometheusRule", pr)
			}
			cm := byKind["ConfigMap"]
			checkConfigKeys(t, "rendered ConfigMap falco-scorer.yaml", decodeOne(t, "rendered config", str(cm, "data", "falco-scorer.yaml")), ref,
				configWant{ingest: anyIngest, admin: anyAdmin, adminToken: true, rulesFile: true})
			if _, err := rules.Parse([]byte(str(cm, "data", "rules.yaml")), "rendered rules.yaml"); err != nil {
				t.Errorf("rendered rules.yaml does not parse: %v", err)
			}
			if sec := byKind["Secret"]; sec != nil {
				// admin.token_file names it: without the key the service
				// would not start.
				if get(sec, "data", "admin-token") == nil {
					t.Errorf("rendered Secret lacks data.admin-token")
				}
				if slices.Contains(tt.args, "secrets.kafkaPassword=pw") {
					for _, k := range []string{"slack-webhook", "kafka-password"} {
						if get(sec, "data", k) == nil {
							t.Errorf("rendered Secret lacks data.%s", k)
						}
					}
				}
			}
		})
	}

	deployment := []string{"--set", "controller.kind=deployment", "--set", "persistence.type=pvc"}
	for _, bad := range [][]string{
		{"--set", "controller.kind=statefulset"},
		{"--set", "persistence.type=pvc"}, // pvc with a DaemonSet
		{"--set", "persistence.type=nfs"},
		{"--set", "controller.kind=deployment"}, // hostPath with a Deployment
		append([]string{"--set", "controller.replicas=2"}, deployment...),
		append([]string{"--set", "persistence.accessModes={ReadWriteMany}"}, deployment...),
		append([]string{"--set", "service.internalTrafficPolicy=Local"}, deployment...),
	} {
		if _, err := runHelm(t, helm, append([]string{"template", "fs", chart, "--kube-version", kubeVersion}, bad...)...); err == nil {
			t.Errorf("helm template %v succeeded, want a failure", bad)
		}
	}
	checkChartSecrets(t, helm, chart)
}

// checkChartSecrets (issue 18): a sink enabled without its secret used to
// render, and the pod never started (falco-scorer refuses a *_file it
// cannot read). The chart refuses it at render, naming the config key and
// the value to set; with the secret (or an existing Secret, whose keys
// cannot be seen at render) it renders.
func checkChartSecrets(t *testing.T, helm, chart string) {
	t.Helper()
	base := []string{"template", "fs", chart, "--kube-version", kubeVersion}
	for _, tc := range []struct {
		name string
		set  []string
		want []string
	}{
		{"slack without its webhook", []string{"config.sinks.slack.enabled=true"},
			[]string{"config.sinks.slack.webhook_url_file", "secrets.slackWebhookURL"}},
		{"kafka without its password", []string{"config.sinks.kafka.enabled=true"},
			[]string{"config.sinks.kafka.sasl.password_file", "secrets.kafkaPassword"}},
		{"ingest token without its secret", []string{"config.inputs.http.token_file=/etc/falco-scorer/secrets/ingest-token"},
			[]string{"config.inputs.http.token_file", "secrets.ingestToken"}},
		{"webhook url from a key the chart does not create",
			[]string{"config.sinks.webhook.enabled=true", "config.sinks.webhook.url_file=/etc/falco-scorer/secrets/webhook-url"},
			[]string{"config.sinks.webhook.url_file", "secrets.existingSecret"}},
		{"secret file outside the mount",
			[]string{"config.sinks.slack.enabled=true", "config.sinks.slack.webhook_url_file=/var/run/slack", "secrets.existingSecret=mine"},
			[]string{"config.sinks.slack.webhook_url_file", "/etc/falco-scorer/secrets/"}},
		{"slack with no source at all",
			[]string{"config.sinks.slack.enabled=true", "config.sinks.slack.webhook_url_file=null", "config.sinks.slack.webhook_url_env=SLACK_URL"},
			[]string{"config.sinks.slack", "webhook_url_file"}},
	} {
		var args []string
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := runHelm(t, helm, append(slices.Clone(base), args...)...)
		if err == nil {
			t.Errorf("%s: helm template --set %v succeeded, want a failure", tc.name, tc.set)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: helm template --set %v: %v\nwant the error to name %s", tc.name, tc.set, err, w)
			}
		}
	}
	for _, set := range [][]string{
		{"config.sinks.slack.enabled=true", "secrets.slackWebhookURL=https://hooks.example/x"},
		{"config.sinks.slack.enabled=true", "config.sinks.kafka.enabled=true", "secrets.existingSecret=mine"},
		{"config.sinks.kafka.enabled=true", "secrets.kafkaPassword=pw", "config.sinks.webhook.enabled=true"},
		{"config.inputs.http.token_file=/etc/falco-scorer/secrets/ingest-token", "secrets.ingestToken=tok"},
	} {
		var args []string
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if _, err := runHelm(t, helm, append(slices.Clone(base), args...)...); err != nil {
			t.Errorf("helm template --set %v: %v, want it to render", set, err)
		}
	}
}

// TestHelmChartValuesSchema: values.schema.json makes wrong values fail at
// helm install (template, lint), naming the value, instead of at pod start.
func TestHelmChartValuesSchema(t *testing.T) {
	helm := helmBinary(t)
	chart := filepath.Join("helm", "falco-scorer")
	base := []string{"template", "fs", chart, "--kube-version", kubeVersion}
	for _, bad := range []struct {
		set, field string
	}{
		{"controller.kind=statefulset", "controller"},
		{"controller.replicas=2", "replicas"},
		{"image.pullPolicy=Sometimes", "pullPolicy"},
		{"image.digest=latest", "digest"},
		{"service.port=70000", "port"},
		{"service.internalTrafficPolicy=local", "internalTrafficPolicy"},
		{"persistence.type=nfs", "persistence"},
		{"persistence.accessModes={ReadWriteMany}", "accessModes"},
		{"networkPolicy.enabled=yes", "enabled"},
		{"config.shutdown_timeout=soon", "shutdown_timeout"},
		{"terminationGracePeriodSeconds=-1", "terminationGracePeriodSeconds"},
		{"imagePullSecret=x", "imagePullSecret"}, // misspelt key
	} {
		_, err := runHelm(t, helm, append(slices.Clone(base), "--set", bad.set)...)
		if err == nil {
			t.Errorf("helm template --set %s succeeded, want the values schema to refuse it", bad.set)
			continue
		}
		if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("helm template --set %s: %v\nwant a values schema error naming %s", bad.set, err, bad.field)
		}
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	out, err := runHelm(t, helm, append(slices.Clone(base), "--set", "image.digest="+digest)...)
	if err != nil {
		t.Fatal(err)
	}
	if want := "image: ghcr.io/falco-scorer/falco-scorer@" + digest; !strings.Contains(string(out), want) {
		t.Errorf("image.digest set: rendered chart lacks %q", want)
	}
}
