package rules

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// maxDedupShards spreads the dedup keys over independently locked shards so
// that concurrent workers rarely contend.
const maxDedupShards = 16

// dedup remembers, per key, when an alert was last delivered. Memory is
// bounded: each shard keeps at most perShard keys and evicts the least
// recently seen.
type dedup struct {
	window   time.Duration
	seed     maphash.Seed
	shards   []dedupShard
	perShard int
	evicted  atomic.Uint64
}

type dedupShard struct {
	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // of *dedupEntry; front is the most recently seen
}

type dedupEntry struct {
	key  string
	last time.Time // when an alert with this key was last delivered
}

func newDedup(window time.Duration, maxKeys int) *dedup {
	n := min(maxDedupShards, maxKeys)
	d := &dedup{
		window:   window,
		seed:     maphash.MakeSeed(),
		shards:   make([]dedupShard, n),
		perShard: maxKeys / n,
	}
	for i := range d.shards {
		d.shards[i].m = make(map[string]*list.Element)
	}
	return d
}

// duplicate reports whether key was delivered less than the window before
// now; if not, it records now as the key's delivery time. The window is
// fixed from that delivery, so a steady stream passes once per window. A
// clock that went backwards starts a new window.
func (d *dedup) duplicate(key string, now time.Time) bool {
	s := &d.shards[maphash.String(d.seed, key)%uint64(len(d.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.m[key]; ok {
		s.lru.MoveToFront(el)
		ent := el.Value.(*dedupEntry)
		if !now.Before(ent.last) && now.Sub(ent.last) < d.window {
			return true
		}
		ent.last = now
		return false
	}
	for s.lru.Len() >= d.perShard {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.m, old.Value.(*dedupEntry).key)
		d.evicted.Add(1)
	}
	s.m[key] = s.lru.PushFront(&dedupEntry{key: key, last: now})
	return false
}

func (d *dedup) len() int {
	n := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
