package evaluate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Trace is one sequence of system calls.
type Trace struct {
	Name   string   // path relative to the directory loaded
	Family string   // attack family ("Adduser" for attack/Adduser_3/…); "" for top-level files
	Calls  []string // system-call names or numbers, in order
}

// LoadDir reads every regular file under dir as one trace, in lexical path
// order. Empty files are skipped.
func LoadDir(dir string) ([]Trace, error) {
	var out []Trace
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		calls := strings.Fields(string(b))
		if len(calls) == 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, Trace{Name: filepath.ToSlash(rel), Family: family(rel), Calls: calls})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load traces %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load traces %s: no trace files", dir)
	}
	slices.SortFunc(out, func(a, b Trace) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// family derives the family from the first directory of rel, without a
// trailing _N run number.
func family(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 2 {
		return ""
	}
	f := parts[0]
	if i := strings.LastIndexByte(f, '_'); i > 0 && strings.Trim(f[i+1:], "0123456789") == "" && i+1 < len(f) {
		f = f[:i]
	}
	return f
}
