package journal

import (
	"errors"
	"strings"
	"syscall"
)

// Errors of Append. A failed write is a *WriteError; a cancelled context
// comes back as the context's error.
var (
	// ErrClosed: the log is closed (or closing); nothing was written.
	ErrClosed = errors.New("journal closed")
	// ErrOverloaded: more than maxQueuedBytes wait for the writer already.
	ErrOverloaded = errors.New("journal queue full")
	// ErrLowDisk is the cause of a WriteError when the free-space guard
	// refuses a group (Options.MinFreeBytes).
	ErrLowDisk = errors.New("free disk space below min_free_bytes")
)

// WriteError is a group that could not be written (or synced): none of
// its events is acknowledged. Every caller of the group gets the same one.
type WriteError struct {
	Reason string // Options.Classify of Err: a bounded metric label
	Err    error
}

func (e *WriteError) Error() string { return e.Err.Error() }

func (e *WriteError) Unwrap() error { return e.Err }

// Reasons for a failed write, bounded for a metric label.
const (
	ReasonNoSpace    = "no_space"
	ReasonReadOnly   = "read_only"
	ReasonPermission = "permission"
	ReasonIO         = "io"
	ReasonClosed     = "closed"
	ReasonOther      = "other"
)

// Classify returns a bounded reason for a file-system error: the errno
// when it is wrapped, else the errno's text (a caller's storage engine may
// flatten errors to text), else ReasonOther.
func Classify(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, ErrLowDisk):
		return ReasonNoSpace
	case errors.Is(err, syscall.EROFS):
		return ReasonReadOnly
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return ReasonPermission
	case errors.Is(err, syscall.EIO):
		return ReasonIO
	case errors.Is(err, ErrClosed):
		return ReasonClosed
	}
	s := err.Error()
	for _, m := range []struct{ text, reason string }{
		{syscall.ENOSPC.Error(), ReasonNoSpace},
		{syscall.EDQUOT.Error(), ReasonNoSpace},
		{syscall.EROFS.Error(), ReasonReadOnly},
		{syscall.EACCES.Error(), ReasonPermission},
		{syscall.EPERM.Error(), ReasonPermission},
		{syscall.EIO.Error(), ReasonIO},
	} {
		if strings.Contains(s, m.text) {
			return m.reason
		}
	}
	return ReasonOther
}

// errCorrupt marks a file that is not a journal segment.
var errCorrupt = errors.New("corrupt record")
