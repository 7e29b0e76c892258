package evaluate

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// FuzzLoadDir feeds arbitrary trace files (any bytes, any relative path)
// to the eval's trace loader and scores what it returns: no input may crash
// it or give a non-finite score.
func FuzzLoadDir(f *testing.F) {
	f.Add([]byte("6 6 63 6 42 120 6 195\n"), "attack/Adduser_1/UAD-Adduser-1-1371.txt")
	f.Add([]byte("\x00\xff 1e9 -3 \ufeff 5"), "training/UTD-0001.txt")
	f.Add([]byte(strings.Repeat("7 ", 1000)), "x")
	f.Add([]byte(""), "attack/_/a")
	f.Fuzz(func(t *testing.T, content []byte, rel string) {
		rel = filepath.Clean(rel)
		if rel == "." || filepath.IsAbs(rel) || strings.HasPrefix(rel, "..") || len(rel) > 200 || strings.ContainsRune(rel, 0) {
			return
		}
		dir := t.TempDir()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return
		}
		traces, err := LoadDir(dir)
		if err != nil {
			return // an empty or unreadable directory is an error, not a crash
		}
		m, err := markov.New(markov.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range traces {
			if len(tr.Calls) == 0 {
				t.Fatalf("LoadDir returned an empty trace %q", tr.Name)
			}
			if strings.Contains(tr.Family, "/") {
				t.Fatalf("family(%q) = %q, want one path element", tr.Name, tr.Family)
			}
			var h markov.History
			for _, c := range tr.Calls {
				s := m.Intern(c)
				if x := m.Surprise(&h, s); math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
					t.Fatalf("Surprise(%q) = %v, want finite ≥ 0", c, x)
				}
				m.Learn(&h, s)
				h.Push(s)
			}
		}
	})
}
