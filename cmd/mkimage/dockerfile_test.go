package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// dockerfileContract is the runtime contract of deploy/Dockerfile's final
// stage: what a container started from either image gets.
type dockerfileContract struct {
	Entrypoint, Cmd []string
	User, Workdir   string
	Expose, Volumes []string
}

// parseDockerfile reads the instructions of the last stage that matter at
// run time (exec-form JSON only: the Dockerfile uses nothing else).
func parseDockerfile(t *testing.T, path string) dockerfileContract {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c dockerfileContract
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		jsonList := func() []string {
			var l []string
			if err := json.Unmarshal([]byte(rest), &l); err != nil {
				t.Fatalf("%s: %s %s: not an exec-form JSON list: %v", path, instr, rest, err)
			}
			return l
		}
		switch strings.ToUpper(instr) {
		case "FROM":
			c = dockerfileContract{} // a new stage: only the last one ships
		case "ENTRYPOINT":
			c.Entrypoint = jsonList()
		case "CMD":
			c.Cmd = jsonList()
		case "USER":
			c.User = rest
		case "WORKDIR":
			c.Workdir = rest
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.Expose = append(c.Expose, p)
			}
		case "VOLUME":
			c.Volumes = append(c.Volumes, jsonList()...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(c.Expose)
	sort.Strings(c.Volumes)
	return c
}

func keys(m map[string]struct{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkSameContract fails when an image config differs from the
// Dockerfile's final stage in what a running container sees.
func checkSameContract(t *testing.T, name string, cfg v1.Config) {
	t.Helper()
	d := parseDockerfile(t, filepath.Join("..", "..", "deploy", "Dockerfile"))
	for _, c := range []struct {
		what      string
		got, want any
		eq        bool
	}{
		{"Entrypoint", cfg.Entrypoint, d.Entrypoint, slices.Equal(cfg.Entrypoint, d.Entrypoint)},
		{"Cmd", cfg.Cmd, d.Cmd, slices.Equal(cfg.Cmd, d.Cmd)},
		{"User", cfg.User, d.User, cfg.User == d.User},
		{"WorkingDir", cfg.WorkingDir, d.Workdir, cfg.WorkingDir == d.Workdir},
		{"ExposedPorts", keys(cfg.ExposedPorts), d.Expose, slices.Equal(keys(cfg.ExposedPorts), d.Expose)},
		{"Volumes", keys(cfg.Volumes), d.Volumes, slices.Equal(keys(cfg.Volumes), d.Volumes)},
	} {
		if !c.eq {
			t.Errorf("%s %s = %v, deploy/Dockerfile says %v", name, c.what, c.got, c.want)
		}
	}
}
