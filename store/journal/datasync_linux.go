package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// DataSync flushes f's data (not its timestamps): journal segments are
// preallocated, so no metadata needs flushing.
func DataSync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
