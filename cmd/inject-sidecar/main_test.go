package main

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const falcoDS = `apiVersion: v1
kind: ConfigMap
metadata: {name: falco}
data: {a: b}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: falco}
spec:
  template:
    spec:
      initContainers: [{name: falco-driver-loader, image: x}]
      containers:
        - name: falco
          image: falco
`

const sidecar = `containers:
  - name: falco-scorer
    image: scorer
`

func TestInject(t *testing.T) {
	out, err := inject([]byte(falcoDS), []byte(sidecar))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	var docs []map[string]any
	for {
		var d map[string]any
		if dec.Decode(&d) != nil {
			break
		}
		docs = append(docs, d)
	}
	if len(docs) != 2 {
		t.Fatalf("inject: %d documents, want 2", len(docs))
	}
	pod := docs[1]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	cs := pod["containers"].([]any)
	if len(cs) != 2 || cs[1].(map[string]any)["name"] != "falco-scorer" {
		t.Errorf("containers = %v, want falco then falco-scorer", cs)
	}
	if ic := pod["initContainers"].([]any); len(ic) != 1 {
		t.Errorf("initContainers = %v, want only the driver loader (the scorer must not be one)", ic)
	}
	if docs[0]["data"].(map[string]any)["a"] != "b" {
		t.Errorf("ConfigMap changed: %v", docs[0])
	}
}

func TestInjectRefuses(t *testing.T) {
	tests := []struct {
		name, manifests, sidecar, want string
	}{
		{"no falco workload", "kind: ConfigMap\nmetadata: {name: x}\n", sidecar, "no DaemonSet or Deployment"},
		{"already injected", falcoDS + "        - name: falco-scorer\n          image: old\n", sidecar, "already has a container named falco-scorer"},
		{"empty sidecar", falcoDS, "containers: []\n", "containers: empty"},
		{"unnamed container", falcoDS, "containers: [{image: x}]\n", "containers[0].name: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inject([]byte(tt.manifests), []byte(tt.sidecar))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("inject() error = %v, want %q", err, tt.want)
			}
		})
	}
}
