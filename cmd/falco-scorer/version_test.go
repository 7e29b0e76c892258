package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/falco-scorer/falco-scorer", Version: "v0.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"},
			{Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name string
		tag  string
		bi   *debug.BuildInfo
		want []string
	}{
		{"tagged dirty build", "v0.2.0", bi, []string{
			"falco-scorer v0.2.0\n",
			"module:   github.com/falco-scorer/falco-scorer v0.2.0\n",
			"revision: 0123456789abcdef0123456789abcdef01234567\n",
			"time:     2026-11-30T10:00:00Z\n",
			"dirty:    true\n",
			"go:       go1.26.8 linux/arm64\n",
		}},
		{"untagged build outside a checkout", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/falco-scorer/falco-scorer", Version: "(devel)"}}, []string{
			"falco-scorer dev\n", "module:   github.com/falco-scorer/falco-scorer (devel)\n",
			"revision: (unknown)\n", "dirty:    unknown\n",
		}},
		{"no build info", "dev", nil, []string{"falco-scorer dev\n", "build info: not available\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionText(tt.tag, tt.bi)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionText(%q) = %q, want it to contain %q", tt.tag, got, w)
				}
			}
		})
	}
}

// TestVersionCommand runs the subcommand: the first line carries the tag
// (main.version, "dev" without -ldflags), and the test binary's own build
// info follows.
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out, &out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatalf("version: %v", err)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); first != "falco-scorer "+version {
		t.Errorf("version first line = %q, want %q", first, "falco-scorer "+version)
	}
	if !strings.Contains(out.String(), "module:") {
		t.Errorf("version output = %q, want a module line", out.String())
	}
}
