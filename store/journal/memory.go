package journal

import (
	"maps"
	"slices"
	"sync"
)

// memJournal is the log of Options.InMemory: records live until they are
// completed, and nothing survives Close.
type memJournal struct {
	mu      sync.Mutex
	entries map[uint64][]byte
}

func (j *memJournal) add(first uint64, raws [][]byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, raw := range raws {
		j.entries[first+uint64(i)] = raw
	}
}

func (j *memJournal) complete(seqs []uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range seqs {
		delete(j.entries, s)
	}
}

func (j *memJournal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

func (j *memJournal) replay(fn func(seq uint64, raw []byte) error) error {
	j.mu.Lock()
	seqs := slices.Sorted(maps.Keys(j.entries))
	raws := make([][]byte, len(seqs))
	for i, s := range seqs {
		raws[i] = j.entries[s]
	}
	j.mu.Unlock()
	for i, s := range seqs {
		if err := fn(s, raws[i]); err != nil {
			return err
		}
	}
	return nil
}
