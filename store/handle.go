package store

import (
	"errors"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Transaction limits kept well below Badger's own (15 % of the 8 MiB
// memtable, about 1.2 MB, and about 12k entries), so a batch never hits
// ErrTxnTooBig in practice and an image's entries always share a txn.
// Values of 256 bytes or more live in the value log and weigh only a
// pointer in Badger's accounting; these limits count them whole.
const (
	txnMaxBytes   = 1 << 20
	txnMaxEntries = 5000
)

// handle is the one Badger handle that the store's parts (the journal's
// markers, the outbox, the baselines) share, with the guard that keeps it
// from use after Close.
type handle struct {
	bdb *badger.DB

	// life guards bdb against use after Close: operations hold it for
	// reading, Close takes it for writing once they have finished.
	life   sync.RWMutex
	closed bool
}

// acquire takes the lifetime read lock; release with h.life.RUnlock.
func (h *handle) acquire() error {
	h.life.RLock()
	if h.closed {
		h.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// view runs fn in a read transaction unless the store is closed.
func (h *handle) view(fn func(txn *badger.Txn) error) error {
	if err := h.acquire(); err != nil {
		return err
	}
	defer h.life.RUnlock()
	return h.bdb.View(fn)
}

func (h *handle) newBatch() *batch { return &batch{db: h.bdb, txn: h.bdb.NewTransaction(true)} }

// batch writes entries in as few Badger transactions as the size limits
// allow. Callers that need atomicity for a group of entries call room first
// with the group's size, so the group lands in one transaction.
type batch struct {
	db      *badger.DB
	txn     *badger.Txn
	n       int
	bytes   int
	commits int
}

// room commits the current transaction first when n more entries of size
// bytes would not fit in it.
func (b *batch) room(n, bytes int) error {
	if b.n == 0 || (b.n+n <= txnMaxEntries && b.bytes+bytes <= txnMaxBytes) {
		return nil
	}
	return b.flush()
}

func (b *batch) flush() error {
	if err := b.txn.Commit(); err != nil {
		return err
	}
	b.commits++
	b.txn = b.db.NewTransaction(true)
	b.n, b.bytes = 0, 0
	return nil
}

func (b *batch) set(k, v []byte) error {
	err := b.txn.Set(k, v)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = b.flush(); err != nil {
			return err
		}
		err = b.txn.Set(k, v)
	}
	b.n++
	b.bytes += len(k) + len(v) + 16
	return err
}

func (b *batch) del(k []byte) error {
	err := b.txn.Delete(k)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = b.flush(); err != nil {
			return err
		}
		err = b.txn.Delete(k)
	}
	b.n++
	b.bytes += len(k) + 16
	return err
}

func (b *batch) commit() error { return b.txn.Commit() }

func (b *batch) discard() { b.txn.Discard() }
