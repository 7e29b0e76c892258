package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/store/journal"
)

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("store closed")

// Reasons for a failed write, bounded for the metric label.
const (
	reasonNoSpace    = journal.ReasonNoSpace
	reasonReadOnly   = journal.ReasonReadOnly
	reasonPermission = journal.ReasonPermission
	reasonIO         = journal.ReasonIO
	reasonClosed     = journal.ReasonClosed
	reasonTooLarge   = "too_large"
	reasonOther      = journal.ReasonOther
)

// classify returns a bounded reason for a write error: Badger's own errors
// here, the file system's by journal.Classify. Badger flattens most errors
// to text (y.Wrap formats with %+v), so errors.Is on the errno only works
// for errors raised outside Badger; the text is the fallback.
func classify(err error) string {
	switch {
	case errors.Is(err, ErrClosed), errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites):
		return reasonClosed
	case errors.Is(err, badger.ErrTxnTooBig):
		return reasonTooLarge
	}
	if r := journal.Classify(err); r != reasonOther {
		return r
	}
	s := err.Error()
	if strings.Contains(s, badger.ErrDBClosed.Error()) || strings.Contains(s, badger.ErrBlockedWrites.Error()) {
		return reasonClosed
	}
	return reasonOther
}

// unavailable wraps a failed journal write so that callers can answer 503:
// errors.Is(err, scorer.ErrUnavailable) holds, and the cause stays readable.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, scorer.ErrUnavailable, err)
}
