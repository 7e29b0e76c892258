//go:build !linux

package journal

import "os"

// DataSync flushes f; fdatasync is Linux-only, elsewhere it is a full sync.
func DataSync(f *os.File) error { return f.Sync() }
