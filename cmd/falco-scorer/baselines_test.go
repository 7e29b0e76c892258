package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/store"
)

func runBaselines(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := newBaselinesCmdWith(&dir, nil)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func seedStore(t *testing.T, dir string) {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Dir = dir
	db, err := store.Open(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := db.PutDeltas([]scorer.BaselineDelta{
		{Image: "docker.io/library/nginx:1.27", Bucket: b, Counts: []byte("c"), Meta: []byte("m")},
		{Image: "redis:7", Bucket: b, Counts: []byte("r")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBaselinesCommand(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	seedStore(t, src)
	file := filepath.Join(t.TempDir(), "b.jsonl")

	out, err := runBaselines(t, src, "list")
	if err != nil || !strings.Contains(out, "docker.io/library/nginx:1.27") || !strings.Contains(out, "redis:7") {
		t.Fatalf("list = %q, %v", out, err)
	}
	out, err = runBaselines(t, src, "show", "redis:7")
	if err != nil || !strings.Contains(out, `"blobs": 1`) {
		t.Fatalf("show = %q, %v", out, err)
	}
	if _, err := runBaselines(t, src, "show", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("show nope = %v, want ErrNotFound", err)
	}
	if out, err := runBaselines(t, src, "export", "redis:7", file); err != nil {
		t.Fatalf("export = %q, %v", out, err)
	}
	if out, err := runBaselines(t, dst, "import", file); err != nil || !strings.Contains(out, "imported 1 images") {
		t.Fatalf("import = %q, %v", out, err)
	}
	out, err = runBaselines(t, dst, "list", "--json")
	if err != nil || !strings.Contains(out, `"image": "redis:7"`) || strings.Contains(out, "nginx") {
		t.Fatalf("list --json after import = %q, %v", out, err)
	}
	if _, err := runBaselines(t, dst, "reset", "redis:7"); err != nil {
		t.Fatalf("reset = %v", err)
	}
	if _, err := runBaselines(t, dst, "reset", "redis:7"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second reset = %v, want ErrNotFound", err)
	}
	if _, err := runBaselines(t, filepath.Join(src, "missing"), "list"); err == nil {
		t.Errorf("list on a missing directory succeeded, want an error")
	}
	if err := os.WriteFile(file, []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runBaselines(t, dst, "import", file); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("import junk = %v, want an error naming line 1", err)
	}
}

func TestBaselinesCommandRefusesLockedDir(t *testing.T) {
	dir := t.TempDir()
	cfg := store.DefaultConfig()
	cfg.Dir = dir
	db, err := store.Open(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := runBaselines(t, dir, "list"); err == nil || !strings.Contains(err.Error(), "admin API") {
		t.Errorf("list on a directory in use = %v, want an error pointing to the admin API", err)
	}
}

// dirState is every file under dir with a hash of its content.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBaselinesReadsLeaveStoreUntouched (issue 18): list, show and export
// open the store read-only: the data directory is byte for byte what the
// service left (no journal segments created, no memtable flushed, no
// format record written), and two readers can run at once.
func TestBaselinesReadsLeaveStoreUntouched(t *testing.T) {
	dir := t.TempDir()
	seedStore(t, dir)
	before := dirState(t, dir)
	file := filepath.Join(t.TempDir(), "b.jsonl")
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"show", "redis:7"}, {"export", file}} {
		if out, err := runBaselines(t, dir, args...); err != nil {
			t.Fatalf("baselines %v = %q, %v", args, out, err)
		}
		if after := dirState(t, dir); !maps.Equal(before, after) {
			t.Fatalf("baselines %v changed the data directory:\nbefore %v\nafter  %v", args, before, after)
		}
	}
	// A reader holding the store does not keep another reader out.
	ro, err := store.OpenReadOnly(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if out, err := runBaselines(t, dir, "list"); err != nil || !strings.Contains(out, "redis:7") {
		t.Errorf("list beside another reader = %q, %v", out, err)
	}
}
