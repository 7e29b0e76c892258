// Package scorertest holds helpers shared by the tests of several packages.
// It is imported only from _test.go files.
package scorertest

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers:
// captured logs, a sink's output.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// OwnDataRaces returns the race detector's reports in stderr (a child
// process's output) whose racing accesses touch code outside Badger and
// its cache library. Badger has known races of its own under -race (for
// example value-log GC reading DB.MaxVersion while a memtable write runs);
// those are returned in thirdParty, for the test to log, so that a crash
// test fails on falco-scorer's races and not on a dependency's.
func OwnDataRaces(stderr string) (own, thirdParty []string) {
	const marker = "WARNING: DATA RACE"
	parts := strings.Split(stderr, marker)
	for _, p := range parts[1:] {
		report := p
		if i := strings.Index(report, "=================="); i >= 0 {
			report = report[:i]
		}
		if accessesOnlyDependencies(report) {
			thirdParty = append(thirdParty, marker+report)
		} else {
			own = append(own, marker+report)
		}
	}
	return own, thirdParty
}

// accessesOnlyDependencies reports whether every frame of the racing
// accesses (the report up to the goroutines' creation stacks) is Badger's,
// its cache's or the Go runtime's.
func accessesOnlyDependencies(report string) bool {
	accesses := report
	if i := strings.Index(accesses, "\nGoroutine "); i >= 0 {
		accesses = accesses[:i]
	}
	frames := 0
	for _, line := range strings.Split(accesses, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "/") || strings.HasSuffix(line, ":") {
			continue // file:line lines and section headers ("Read at …:")
		}
		frames++
		switch {
		case strings.HasPrefix(line, "github.com/dgraph-io/badger/"),
			strings.HasPrefix(line, "github.com/dgraph-io/ristretto/"),
			strings.HasPrefix(line, "runtime."), strings.HasPrefix(line, "sync/atomic."),
			strings.HasPrefix(line, "sync."):
		default:
			return false
		}
	}
	return frames > 0
}
