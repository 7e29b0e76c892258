package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("store closed")

// Reasons for a failed write, bounded for the metric label.
const (
	reasonNoSpace    = "no_space"
	reasonReadOnly   = "read_only"
	reasonPermission = "permission"
	reasonIO         = "io"
	reasonClosed     = "closed"
	reasonTooLarge   = "too_large"
	reasonOther      = "other"
)

// classify returns a bounded reason for a write error. Badger flattens most
// errors to text (y.Wrap formats with %+v), so errors.Is on the errno only
// works for errors raised outside Badger; the text of the errno is the
// fallback.
func classify(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, errLowDisk):
		return reasonNoSpace
	case errors.Is(err, syscall.EROFS):
		return reasonReadOnly
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return reasonPermission
	case errors.Is(err, syscall.EIO):
		return reasonIO
	case errors.Is(err, ErrClosed), errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites):
		return reasonClosed
	case errors.Is(err, badger.ErrTxnTooBig):
		return reasonTooLarge
	}
	s := err.Error()
	for _, m := range []struct{ text, reason string }{
		{syscall.ENOSPC.Error(), reasonNoSpace},
		{syscall.EDQUOT.Error(), reasonNoSpace},
		{syscall.EROFS.Error(), reasonReadOnly},
		{syscall.EACCES.Error(), reasonPermission},
		{syscall.EPERM.Error(), reasonPermission},
		{syscall.EIO.Error(), reasonIO},
		{badger.ErrDBClosed.Error(), reasonClosed},
		{badger.ErrBlockedWrites.Error(), reasonClosed},
	} {
		if strings.Contains(s, m.text) {
			return m.reason
		}
	}
	return reasonOther
}

// unavailable wraps a failed journal write so that callers can answer 503:
// errors.Is(err, scorer.ErrUnavailable) holds, and the cause stays readable.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, scorer.ErrUnavailable, err)
}

// errLowDisk is the cause when the free-space guard refuses a write.
var errLowDisk = errors.New("free disk space below min_free_bytes")
