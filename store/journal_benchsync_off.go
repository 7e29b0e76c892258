//go:build !falcobench

package store

import "time"

// benchSyncDelay is 0 outside benchmark builds: see journal_benchsync.go.
func benchSyncDelay() time.Duration { return 0 }
