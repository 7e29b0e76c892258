package store

import (
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// syncBuffer captures output written concurrently.
type syncBuffer = scorertest.SyncBuffer

func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.MinFreeBytes = MinFreeFloor     // the lowest a store on disk accepts
	cfg.JournalSegmentBytes = 256 << 10 // rotate often; zero-fill little
	return cfg
}

// openAt opens a store in dir (in memory when dir is empty) and closes it
// at the end of the test.
func openAt(t testing.TB, dir string) *DB {
	t.Helper()
	cfg := testConfig(dir)
	cfg.InMemory = dir == ""
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// fakeClock is a settable clock for d.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// openWithRegistry opens a store with cfg and a metrics registry of its
// own, and closes it at the end of the test (Close may also be called
// earlier).
func openWithRegistry(t *testing.T, cfg Config) (*DB, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	d, err := Open(cfg, zerolog.Nop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, reg
}
