package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// checkFormat writes the format record into an empty store and refuses a
// store written with another layout.
func (d *DB) checkFormat() error {
	return d.bdb.Update(func(txn *badger.Txn) error {
		got, empty, err := d.storedFormat(txn, "")
		if err != nil {
			return err
		}
		if empty {
			return txn.Set(formatKey(), u32(FormatVersion))
		}
		switch got {
		case 1:
			return d.upgradeFormat1(txn)
		case formatReadAsIs: // format 3 only adds compressed outbox values
			d.log.Info().Msg("upgrading store format 2 to 3 (outbox payloads compressed from now on)")
			return txn.Set(formatKey(), u32(FormatVersion))
		}
		if got != FormatVersion {
			return fmt.Errorf("open store %s: format version %d, this build reads %d", d.cfg.Dir, got, FormatVersion)
		}
		return nil
	})
}

// formatReadAsIs is the older format whose values this build reads
// unchanged (format 3 only added compressed outbox values): the service
// upgrades it by rewriting the record, and read-only opens read it as it is.
const formatReadAsIs = 2

// storedFormat reads the store's format version, or reports an empty store
// (no record, no data). A non-empty store without a record, or a malformed
// record, is an error; how names the opening ("" or " read-only") in its
// text.
func (d *DB) storedFormat(txn *badger.Txn, how string) (version uint32, empty bool, err error) {
	item, err := txn.Get(formatKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		blank := !it.Valid()
		it.Close()
		if !blank {
			return 0, false, fmt.Errorf("open store %s%s: no format record in a non-empty directory (not a falco-scorer store?)", d.cfg.Dir, how)
		}
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read format record: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, false, fmt.Errorf("read format record: %w", err)
	}
	if len(v) != 4 {
		return 0, false, fmt.Errorf("open store %s%s: format record: %w", d.cfg.Dir, how, errCorrupt)
	}
	return uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]), false, nil
}

// upgradeFormat1 upgrades a format-1 store, whose journal lived in Badger,
// when that journal is empty (the service drains it on a clean stop).
// Pending format-1 entries are refused rather than converted: the previous
// release scores them when it starts again.
func (d *DB) upgradeFormat1(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixJournal}})
	it.Rewind()
	pending := it.Valid()
	it.Close()
	if pending {
		return fmt.Errorf("open store %s: format 1 store with unprocessed journal entries; start the previous release once to drain them, then this one", d.cfg.Dir)
	}
	d.log.Info().Msg("upgrading store format 1 to 3 (journal moved to segment files)")
	return txn.Set(formatKey(), u32(FormatVersion))
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
