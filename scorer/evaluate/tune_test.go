package evaluate

import (
	"context"
	"os"
	"testing"
)

func TestTune(t *testing.T) {
	if os.Getenv("EVAL_TUNE") == "" {
		t.Skip("set EVAL_TUNE=1")
	}
	train, normal, attack := loadShared(t)
	for _, f := range []int{2, 3, 5, 10} {
		cfg := DefaultConfig()
		cfg.Folds = f
		r, err := Run(context.Background(), cfg, train, normal, attack)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("folds=%d cal01=%+v cal05=%+v", f, r.Calibrated["0.01"], r.Calibrated["0.05"])
	}
}
