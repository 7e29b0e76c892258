package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestOpenAfterKillBetweenMemtableCreateAndSize: a SIGKILL can land after
// Badger created its next memtable file and before it sized it, leaving an
// empty .mem file; Badger then refuses to open. An empty memtable file holds
// nothing, so Open removes it and opens the store.
func TestOpenAfterKillBetweenMemtableCreateAndSize(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	empty := filepath.Join(dir, "00099.mem")
	if err := os.WriteFile(empty, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	d, err = Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open() with an empty memtable file (beside %v) = %v", mems, err)
	}
	defer d.Close()
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("the empty memtable file is still there: %v", err)
	}
}
