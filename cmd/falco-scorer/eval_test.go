package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTraces writes a tiny ADFA-LD-layout tree.
func writeTraces(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"train/a.txt": "1 2 3 1 2 3 1 2 3", "train/b.txt": "1 2 3 1 2 3", "train/c.txt": "2 3 1 2 3 1",
		"train/d.txt": "3 1 2 3 1 2", "normal/n.txt": "1 2 3 1 2", "normal/m.txt": "2 3 1 2 3",
		"attack/Evil_1/x.txt": "1 9 9 7 3 9", "attack/Evil_2/y.txt": "9 9 7 7 1",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestEvalCmd(t *testing.T) {
	root := writeTraces(t)
	dirs := []string{"--train", filepath.Join(root, "train"), "--normal", filepath.Join(root, "normal"),
		"--attack", filepath.Join(root, "attack")}
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{"json", append(dirs, "--json"), []string{`"auc": 1`, `"tpr_at_fpr"`, `"0.05"`, `"fpr_at_tpr90"`,
			`"per_family"`, `"Evil"`, `"alerts_per_million_normal_events"`, `"events_to_first_alert_p50"`, `"calibrated"`, `"counts"`}, ""},
		{"table", append(dirs, "--order", "3", "--window", "4"), []string{"sequence", "online (window 4)", "Evil", "calibrated target"}, ""},
		{"missing dir", []string{"--train", "x"}, nil, "required"},
		{"bad order", append(dirs, "--order", "17"), nil, "order: 17"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newEvalCmd(&globalFlags{})
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(tc.args)
			err := cmd.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Execute(%v) = %v, want error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Execute(%v) = %v", tc.args, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tc.name == "json" {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Errorf("output is not one JSON object: %v", err)
				}
			}
		})
	}
}
