package evaluate

import (
	"context"
	"os"
	"testing"
)

// TestTune prints the figures behind the defaults (set EVAL_TUNE=1).
func TestTune(t *testing.T) {
	if os.Getenv("EVAL_TUNE") == "" {
		t.Skip("set EVAL_TUNE=1 to print the parameter sweep")
	}
	train, normal, attack := loadShared(t)
	windows := []int{30}
	if os.Getenv("EVAL_TUNE") == "window" {
		windows = []int{10, 20, 30, 50, 80, 120}
	}
	for _, order := range []int{4, 5, 6} {
		for _, band := range [][2]float64{{0.5, 0.9}, {0.5, 1}, {0.6, 0.9}, {0.5, 0.8}, {0.6, 0.8}, {0.4, 0.9}, {0.25, 0.75}} {
			for _, w := range windows {
				cfg := DefaultConfig()
				cfg.Model.Order, cfg.BandLow, cfg.BandHigh, cfg.WindowLength = order, band[0], band[1], w
				r, err := Run(context.Background(), cfg, train, normal, attack)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("order=%d band=%v w=%d bits=%.4f auc=%.4f fpr90=%.4f tpr05=%.3f online=%.3f cal01=%.4f cal05=%.4f",
					order, band, w, r.Counts.NormalBits, r.Sequence.AUC, r.Sequence.FPRAtTPR, r.Sequence.TPRAtFPR["0.05"],
					r.Online.TPRAtFPR["0.05"], r.Calibrated["0.01"].FPR, r.Calibrated["0.05"].FPR)
			}
		}
	}
}
