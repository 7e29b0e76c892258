//go:build deploy

package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// kubernetesModule carries the Kubernetes OpenAPI v3 documents
// (api/openapi-spec/v3) that every rendered and shipped object is
// validated against, offline once the module is in the module cache.
// 1.34 is the oldest release the module proxy serves here; the charts are
// rendered for 1.33 (kubeVersion), whose API these objects also fit.
const kubernetesModule = "k8s.io/kubernetes@v1.34.4"

// schemaSet validates Kubernetes objects by apiVersion and kind.
type schemaSet struct {
	dir      string // api/openapi-spec/v3 in the module cache
	compiler *jsonschema.Compiler
	loaded   map[string]bool               // OpenAPI document URLs added
	byGVK    map[string]string             // "apps/v1 DaemonSet" -> schema URL
	compiled map[string]*jsonschema.Schema // schema URL -> schema
	mu       sync.Mutex
}

var (
	schemasOnce sync.Once
	schemas     *schemaSet
	schemasErr  error
)

// openAPISchemas downloads the Kubernetes module (once per test binary)
// and loads the vendored CRDs.
func openAPISchemas(t *testing.T) *schemaSet {
	t.Helper()
	schemasOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", kubernetesModule)
		cmd.Dir = t.TempDir() // outside the module: no go.mod change
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		out, err := cmd.Output()
		if err != nil {
			schemasErr = fmt.Errorf("go mod download %s: %v\n%s", kubernetesModule, err, out)
			return
		}
		var m struct{ Dir, Error string }
		if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
			schemasErr = fmt.Errorf("go mod download %s: %s %v", kubernetesModule, m.Error, err)
			return
		}
		s := &schemaSet{
			dir:      filepath.Join(m.Dir, "api", "openapi-spec", "v3"),
			compiler: jsonschema.NewCompiler(),
			loaded:   map[string]bool{},
			byGVK:    map[string]string{},
			compiled: map[string]*jsonschema.Schema{},
		}
		s.compiler.DefaultDraft(jsonschema.Draft4)
		schemasErr = s.addCRDs("testdata/crds")
		schemas = s
	})
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemas
}

// strict makes every object schema with declared properties refuse
// undeclared ones (what kubectl's field validation and kubeconform -strict
// do): without it a misspelt field (readinesProbe) would pass. Schemas that
// preserve unknown fields keep doing so.
func strict(v any) {
	switch x := v.(type) {
	case map[string]any:
		_, hasProps := x["properties"]
		_, hasAdd := x["additionalProperties"]
		if hasProps && !hasAdd && x["x-kubernetes-preserve-unknown-fields"] != true {
			x["additionalProperties"] = false
		}
		for _, c := range x {
			strict(c)
		}
	case []any:
		for _, c := range x {
			strict(c)
		}
	}
}

// loadDoc adds one OpenAPI document and indexes its kinds.
func (s *schemaSet) loadDoc(file string) error {
	url := "file://" + filepath.Join(s.dir, file)
	if s.loaded[url] {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, file))
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	strict(doc)
	if err := s.compiler.AddResource(url, doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	s.loaded[url] = true
	comps, _ := doc.(map[string]any)["components"].(map[string]any)
	for name, sch := range comps["schemas"].(map[string]any) {
		gvks, _ := sch.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m := g.(map[string]any)
			av := m["version"].(string)
			if grp := m["group"].(string); grp != "" {
				av = grp + "/" + av
			}
			s.byGVK[av+" "+m["kind"].(string)] = url + "#/components/schemas/" + name
		}
	}
	return nil
}

// addCRDs indexes the openAPIV3Schema of every version of the CRDs in dir.
func (s *schemaSet) addCRDs(dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		return fmt.Errorf("%s: no CRDs", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var crd map[string]any
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		// Through JSON, so that the schema holds JSON types only.
		jb, err := json.Marshal(crd)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(jb))
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		strict(doc)
		abs, _ := filepath.Abs(f)
		url := "file://" + abs
		if err := s.compiler.AddResource(url, doc); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		spec := doc.(map[string]any)["spec"].(map[string]any)
		group := spec["group"].(string)
		kind := spec["names"].(map[string]any)["kind"].(string)
		for i, v := range spec["versions"].([]any) {
			name := v.(map[string]any)["name"].(string)
			s.byGVK[group+"/"+name+" "+kind] = fmt.Sprintf("%s#/spec/versions/%d/schema/openAPIV3Schema", url, i)
		}
	}
	return nil
}

// openAPIFile names the Kubernetes OpenAPI v3 document of an apiVersion.
func openAPIFile(apiVersion string) string {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return "api__" + apiVersion + "_openapi.json"
	}
	return "apis__" + group + "__" + version + "_openapi.json"
}

// validate checks one object against the schema of its kind; an object
// whose kind has no schema is an error, never a skip.
func (s *schemaSet) validate(d obj) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	av, kind := str(d, "apiVersion"), str(d, "kind")
	key := av + " " + kind
	if _, ok := s.byGVK[key]; !ok && !strings.Contains(av, "monitoring.coreos.com") {
		if err := s.loadDoc(openAPIFile(av)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	url, ok := s.byGVK[key]
	if !ok {
		return fmt.Errorf("no schema for %s", key)
	}
	sch := s.compiled[url]
	if sch == nil {
		var err error
		if sch, err = s.compiler.Compile(url); err != nil {
			return fmt.Errorf("compile %s: %w", url, err)
		}
		s.compiled[url] = sch
	}
	// Through JSON: YAML gives int where JSON Schema expects numbers. Null
	// fields are dropped first, as the API server's decoding does (charts
	// render empty keys such as "securityContext:" as null).
	jb, err := json.Marshal(dropNulls(d))
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(jb))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// checkOpenAPI validates every object of docs; where names the source.
func checkOpenAPI(t *testing.T, where string, docs []obj) {
	t.Helper()
	s := openAPISchemas(t)
	for _, d := range docs {
		if err := s.validate(d); err != nil {
			t.Errorf("%s: %s %s: %v", where, str(d, "kind"), str(d, "metadata", "name"), err)
		}
	}
}

// TestShippedManifestsOpenAPI validates the plain manifests of
// deploy/kubernetes (the values and sidecar files are not objects).
func TestShippedManifestsOpenAPI(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	n := 0
	var kinds []string
	for _, f := range files {
		docs := readDocs(t, f)
		if len(docs) == 0 || str(docs[0], "kind") == "" {
			continue // Helm values or the sidecar fragment
		}
		for _, d := range docs {
			kinds = append(kinds, str(d, "kind"))
		}
		n += len(docs)
		checkOpenAPI(t, f, docs)
	}
	sort.Strings(kinds)
	t.Logf("validated %d shipped objects: %v", n, kinds)
	if n < 5 {
		t.Errorf("validated %d shipped objects, want the ConfigMap, Secret, Service, ServiceMonitor, PrometheusRule and NetworkPolicy", n)
	}
}

// TestOpenAPIValidatorRejects makes sure the validator is not a no-op: a
// misspelt field, a wrong type, a missing required field and an unknown
// kind are each refused.
func TestOpenAPIValidatorRejects(t *testing.T) {
	s := openAPISchemas(t)
	base := func() obj {
		return decodeOne(t, "pod", `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: c
      image: x
      ports: [{containerPort: 2802}]
`)
	}
	if err := s.validate(base()); err != nil {
		t.Fatalf("valid Pod refused: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(obj)
	}{
		{"misspelt field", func(d obj) { get(d, "spec", "containers", 0).(obj)["readinesProbe"] = obj{} }},
		{"wrong type", func(d obj) { get(d, "spec", "containers", 0, "ports", 0).(obj)["containerPort"] = "http" }},
		{"missing required", func(d obj) { delete(get(d, "spec", "containers", 0).(obj), "name") }},
		{"unknown kind", func(d obj) { d["kind"] = "Podd" }},
		{"bad ServiceMonitor", func(d obj) {
			d["apiVersion"], d["kind"] = "monitoring.coreos.com/v1", "ServiceMonitor"
			d["spec"] = obj{"endpoints": []any{obj{"prot": "x"}}, "selector": obj{}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.mutate(d)
			if err := s.validate(d); err == nil {
				t.Errorf("validate(%s) = nil, want an error", tt.name)
			}
		})
	}
}

// dropNulls returns v without null map values (a copy).
func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			if c != nil {
				m[k] = dropNulls(c)
			}
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, c := range x {
			l[i] = dropNulls(c)
		}
		return l
	}
	return v
}
