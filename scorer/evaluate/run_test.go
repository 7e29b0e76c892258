package evaluate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const dataDir = "../../../shared/data/adfa-ld"

func loadShared(t testing.TB) (train, normal, attack []Trace) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, "training")); err != nil {
		t.Skipf("ADFA-LD data not found at %s (expected beside the repository): %v", dataDir, err)
	}
	var err error
	for _, d := range []struct {
		dst *[]Trace
		sub string
	}{{&train, "training"}, {&normal, "validation"}, {&attack, "attack"}} {
		if *d.dst, err = LoadDir(filepath.Join(dataDir, d.sub)); err != nil {
			t.Fatalf("LoadDir(%s) = %v", d.sub, err)
		}
	}
	return train, normal, attack
}

func TestPrintReport(t *testing.T) {
	if os.Getenv("EVAL_PRINT") == "" {
		t.Skip("set EVAL_PRINT=1")
	}
	train, normal, attack := loadShared(t)
	start := time.Now()
	r, err := Run(context.Background(), DefaultConfig(), train, normal, attack)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("%s\n%v", b, time.Since(start))
}
