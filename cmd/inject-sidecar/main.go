// Command inject-sidecar is a Helm post-renderer that adds falco-scorer to
// the pods of the falcosecurity/falco chart as an ordinary container.
//
// Why a post-renderer: the falco chart has a values key for extra init
// containers but none for extra containers, and an init container — even a
// native sidecar (restartPolicy: Always) — gates the containers after it: if
// its image cannot be pulled, or it exits at once, Falco never starts, on
// every node. An ordinary container cannot delay or fail Falco's container:
// kubelet starts the pod's containers independently, so a scorer that is
// down only costs its own events (Falco's http_output logs and drops them).
//
//	helm upgrade --install falco falcosecurity/falco -n falco \
//	  -f deploy/kubernetes/falco-values.yaml \
//	  --post-renderer inject-sidecar \
//	  --post-renderer-args deploy/kubernetes/falco-scorer-sidecar.yaml
//
// It reads the rendered manifests on stdin and writes them to stdout with
// the containers listed in the sidecar file (its `containers:` key) appended
// to every DaemonSet or Deployment whose pod template has a container named
// "falco". Finding no such workload, or a container of the same name
// already there, is an error: a post-renderer that silently changes nothing
// would leave Falco without its scorer. Other documents pass through
// unchanged in content (re-encoded, comments dropped).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: inject-sidecar SIDECAR.yaml < manifests > manifests")
		os.Exit(2)
	}
	sidecar, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "inject-sidecar:", err)
		os.Exit(1)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inject-sidecar: stdin:", err)
		os.Exit(1)
	}
	out, err := inject(in, sidecar)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inject-sidecar:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

// inject returns manifests with the sidecar file's containers added to the
// Falco workloads.
func inject(manifests, sidecar []byte) ([]byte, error) {
	var spec struct {
		Containers []map[string]any `yaml:"containers"`
	}
	if err := yaml.Unmarshal(sidecar, &spec); err != nil {
		return nil, fmt.Errorf("sidecar file: %w", err)
	}
	if len(spec.Containers) == 0 {
		return nil, errors.New("sidecar file: containers: empty")
	}
	for i, c := range spec.Containers {
		if n, _ := c["name"].(string); n == "" {
			return nil, fmt.Errorf("sidecar file: containers[%d].name: empty", i)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(manifests))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	injected := 0
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifests: %w", err)
		}
		if doc == nil {
			continue
		}
		ok, err := injectInto(doc, spec.Containers)
		if err != nil {
			return nil, err
		}
		if ok {
			injected++
		}
		if err := enc.Encode(doc); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if injected == 0 {
		return nil, errors.New("manifests: no DaemonSet or Deployment with a container named falco")
	}
	return out.Bytes(), nil
}

// injectInto appends containers to doc's pod template when doc is a Falco
// workload; it reports whether it did.
func injectInto(doc map[string]any, containers []map[string]any) (bool, error) {
	kind, _ := doc["kind"].(string)
	if kind != "DaemonSet" && kind != "Deployment" {
		return false, nil
	}
	spec, _ := doc["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	pod, _ := tmpl["spec"].(map[string]any)
	existing, _ := pod["containers"].([]any)
	names := map[string]bool{}
	for _, c := range existing {
		if m, ok := c.(map[string]any); ok {
			n, _ := m["name"].(string)
			names[n] = true
		}
	}
	if !names["falco"] {
		return false, nil
	}
	meta, _ := doc["metadata"].(map[string]any)
	for _, c := range containers {
		n := c["name"].(string)
		if names[n] {
			return false, fmt.Errorf("%s %v: already has a container named %s", kind, meta["name"], n)
		}
		existing = append(existing, c)
	}
	pod["containers"] = existing
	return true, nil
}
