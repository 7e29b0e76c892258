//go:build !falcobench

package store

// benchRawOutbox is false outside benchmark builds: see outboxcodec_bench.go.
func benchRawOutbox() bool { return false }
