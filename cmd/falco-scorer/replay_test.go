package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayCommand runs `falco-scorer replay FILE` on a small capture:
// every line is scored, every Falco alert reaches the stdout sink, a bad
// line is reported with its number, and nothing about listeners is logged
// (replay serves nothing, even when the configuration names admin.listen).
func TestReplayCommand(t *testing.T) {
	dir := t.TempDir()
	var capture bytes.Buffer
	const n = 50
	for i := range n {
		capture.Write(falcoAlertJSON(i, "nginx:1.27", "Warning"))
		capture.WriteByte('\n')
	}
	capture.WriteString("not json\n")
	file := filepath.Join(dir, "capture.ndjson")
	if err := os.WriteFile(file, capture.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("data_dir: %s\nadmin:\n  listen: 127.0.0.1:1\nlog:\n  level: info\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd(&stdout, &stderr)
	cmd.SetArgs([]string{"replay", "--config", cfg, file})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	errs := stderr.String()
	if !strings.Contains(errs, fmt.Sprintf("replayed %d events (1 bad lines)", n)) || !strings.Contains(errs, "line 51") {
		t.Errorf("replay summary does not count %d events and the bad line 51:\n%s", n, errs)
	}
	if got := strings.Count(stdout.String(), `"kind":"falco"`); got != n {
		t.Errorf("stdout sink got %d Falco alerts, want %d", got, n)
	}
	for _, noise := range []string{"/healthz", "admin.listen", "listening"} {
		if strings.Contains(errs, noise) {
			t.Errorf("replay logged %q although it serves nothing:\n%s", noise, errs)
		}
	}
}
