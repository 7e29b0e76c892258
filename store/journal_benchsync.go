//go:build falcobench

package store

import (
	"os"
	"time"
)

// benchSyncDelayEnv names the environment variable that adds a delay to
// every journal sync, in binaries built with -tags falcobench only: the
// benchmarks use it to show the service on a disk whose syncs are slow
// (network block storage, 1-2 ms) on a machine whose disk is fast.
// Production builds have no such hook (journal_benchsync_off.go).
const benchSyncDelayEnv = "FALCO_SCORER_BENCH_SYNC_DELAY"

// benchSyncDelay is the delay added before every journal sync.
func benchSyncDelay() time.Duration {
	d, err := time.ParseDuration(os.Getenv(benchSyncDelayEnv))
	if err != nil || d < 0 {
		return 0
	}
	return d
}
