//go:build !linux

package store

import "os"

// datasync flushes f; fdatasync is Linux-only, elsewhere it is a full sync.
func datasync(f *os.File) error { return f.Sync() }
