package store

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the store. The zero value is not useful; start from
// DefaultConfig.
type Config struct {
	// Dir is the data directory (created if missing): journal segments in
	// Dir/journal, Badger in Dir itself.
	Dir string `yaml:"dir"`
	// InMemory keeps everything in memory (tests, demos); nothing survives
	// Close and Append's sync is a no-op.
	InMemory bool `yaml:"in_memory"`

	// GroupCommitMaxDelay is how long the journal committer waits for more
	// appends before writing a batch, when the previous batch held several
	// (a lone appender never waits). It stops waiting as soon as as many
	// appends are queued as the previous batch held. Fewer, larger batches
	// save fdatasyncs (kernel CPU); a longer wait costs latency. 0 writes as
	// soon as the previous sync finished: batches still form while a sync
	// runs.
	GroupCommitMaxDelay time.Duration `yaml:"group_commit_max_delay"`
	// JournalSyncInterval sets the durability promise of an acknowledged
	// event. Above 0 (the default, 100ms), a group is acknowledged once
	// written to the journal segment, i.e. in the kernel's page cache, which
	// survives any kill of this process (SIGKILL, OOM kill, panic), and the
	// journal is synced in the background this often: a power loss or
	// kernel crash can lose the events acknowledged since the last sync,
	// about this interval plus the sync's own time. This is the default
	// because one Falco's http_output sends one event at a time and waits
	// for each answer, so syncing before every answer bounds one Falco's
	// rate by 1 / (sync latency) (a few hundred events/s on network block
	// storage), and costs a sync per event of the node's disk budget, while
	// a power loss also loses whatever Falco itself had queued. 0 is the
	// strict mode: every group is synced (fdatasync) before its events are
	// acknowledged, so an acknowledged event survives a power loss too.
	// After a background sync fails, every group is synced before its
	// acknowledgement until restart.
	JournalSyncInterval time.Duration `yaml:"journal_sync_interval"`
	// GroupCommitMaxEvents bounds the events written and synced together.
	GroupCommitMaxEvents int `yaml:"group_commit_max_events"`
	// GroupCommitMaxBytes bounds the bytes written and synced together.
	GroupCommitMaxBytes int `yaml:"group_commit_max_bytes"`
	// JournalSegmentBytes is the size of one journal segment file. Segments
	// are zero-filled before use and recycled once their events are
	// scored, so the journal takes a few segments of disk in steady state.
	JournalSegmentBytes int64 `yaml:"journal_segment_bytes"`
	// MaxOutboxEntries bounds the undelivered alerts of one sink: at this
	// many the pipeline refuses new events (HTTP 429, gRPC back-off) until
	// the sink catches up, since alerts are never dropped.
	MaxOutboxEntries int `yaml:"max_outbox_entries"`
	// MaxEventBytes rejects a single journal event larger than this.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MinFreeBytes makes Append answer ErrUnavailable while the file system
	// holding Dir has less free space than this. Badger writes through
	// memory-mapped sparse files, and touching a page of one on a full disk
	// kills the process with SIGBUS instead of returning ENOSPC (and again
	// at every restart, since replaying the journal writes to Badger), so
	// the journal stops accepting before the disk is full. The guard only
	// stops new events: what is already accepted is still scored, written
	// to the outbox, delivered and compacted, so the margin must hold that
	// growth. It cannot be turned off on disk: values below MinFreeFloor
	// are refused. It is ignored with InMemory.
	MinFreeBytes int64 `yaml:"min_free_bytes"`

	// GCInterval is the period of the maintenance pass: value-log GC, expiry
	// of old buckets and idle images, disk usage metrics.
	GCInterval time.Duration `yaml:"gc_interval"`
	// GCDiscardRatio is Badger's value-log GC threshold (0 < r < 1).
	GCDiscardRatio float64 `yaml:"gc_discard_ratio"`
	// ImageTTL drops an image (meta and all buckets) whose baseline was not
	// flushed for this long. 0 disables.
	ImageTTL time.Duration `yaml:"image_ttl"`
	// BucketRetention drops count buckets whose start is older than this.
	// It must exceed the pipeline's horizon plus one bucket, since the
	// pipeline reads a bucket back when it leaves the horizon. 0 disables.
	BucketRetention time.Duration `yaml:"bucket_retention"`
}

// maxGroupBytes bounds one journal group commit (one write into a segment).
const maxGroupBytes = 4 << 20

// MinFreeFloor is the smallest MinFreeBytes accepted for a store on disk:
// what Badger can still write after the journal stops accepting, with the
// sizes Open configures (TestMinFreeFloorCoversBadger checks them):
//
//   - 32 MiB: one value-log file (ValueLogFileSize). Outbox payloads go to
//     the value log; the current file may fill up before it rotates, and
//     its mmap is sparse, so each page written needs a free block.
//   - 16 MiB: the write-ahead logs of both memtables (NumMemtables ×
//     MemTableSize), also sparse mmaps filled as writes come in.
//   - 8 MiB: the level-0 table a memtable flush writes (at most a
//     memtable's worth) before its write-ahead log is deleted.
//   - 8 MiB: slack for a small compaction's output, written before its
//     inputs are deleted. Journal segments are zero-filled with write(2)
//     before use, so a full disk fails them with ENOSPC, never SIGBUS.
//
// A large level-0 compaction can transiently need more (up to
// NumLevelZeroTablesStall tables of a memtable's size, plus the level-1
// tables they overlap); the default, 256 MiB, covers that. Below the floor
// even the first writes after the guard trips could meet a full disk.
const MinFreeFloor = 64 << 20

// DefaultConfig returns the configuration used when the file says nothing.
func DefaultConfig() Config {
	return Config{
		Dir:                  "./data",
		GroupCommitMaxDelay:  150 * time.Microsecond, // best of 0/150/300/600 µs in BenchmarkE2EProfile
		JournalSyncInterval:  100 * time.Millisecond, // 10 syncs/s; see the field's comment
		GroupCommitMaxEvents: 4096,
		GroupCommitMaxBytes:  4 << 20,
		JournalSegmentBytes:  8 << 20,
		MaxOutboxEntries:     100000,
		MaxEventBytes:        1 << 20,
		MinFreeBytes:         256 << 20,
		GCInterval:           5 * time.Minute,
		GCDiscardRatio:       0.5,
		ImageTTL:             30 * 24 * time.Hour,
		BucketRetention:      8 * 24 * time.Hour,
	}
}

// Validate reports the first problems found, naming fields relative to the
// store section.
func (c Config) Validate() error {
	var errs []error
	errs = c.validateJournal(errs)
	errs = c.validateLimits(errs)
	errs = c.validateMaintenance(errs)
	return errors.Join(errs...)
}

// validateJournal appends the problems of the directory and the journal's
// fields to errs.
func (c Config) validateJournal(errs []error) []error {
	if c.Dir == "" && !c.InMemory {
		errs = append(errs, errors.New("dir: empty"))
	}
	if c.GroupCommitMaxDelay < 0 || c.GroupCommitMaxDelay > time.Second {
		errs = append(errs, fmt.Errorf("group_commit_max_delay: %s not in [0, 1s]", c.GroupCommitMaxDelay))
	}
	if c.JournalSyncInterval != 0 && (c.JournalSyncInterval < time.Millisecond || c.JournalSyncInterval > 10*time.Second) {
		errs = append(errs, fmt.Errorf("journal_sync_interval: %s is neither 0 nor in [1ms, 10s]", c.JournalSyncInterval))
	}
	if c.GroupCommitMaxEvents < 1 || c.GroupCommitMaxEvents > 100000 {
		errs = append(errs, fmt.Errorf("group_commit_max_events: %d not in [1, 100000]", c.GroupCommitMaxEvents))
	}
	if c.GroupCommitMaxBytes < 1<<10 || c.GroupCommitMaxBytes > maxGroupBytes {
		errs = append(errs, fmt.Errorf("group_commit_max_bytes: %d not in [1024, %d]", c.GroupCommitMaxBytes, maxGroupBytes))
	}
	if c.JournalSegmentBytes < 64<<10 || c.JournalSegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("journal_segment_bytes: %d not in [%d, %d]", c.JournalSegmentBytes, 64<<10, 1<<30))
	}
	return errs
}

// validateLimits appends the problems of the outbox, event and disk
// bounds to errs.
func (c Config) validateLimits(errs []error) []error {
	if c.MaxOutboxEntries < 100 || c.MaxOutboxEntries > 100_000_000 {
		errs = append(errs, fmt.Errorf("max_outbox_entries: %d not in [100, 100000000]", c.MaxOutboxEntries))
	}
	if c.MaxEventBytes < 1<<10 || c.MaxEventBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("max_event_bytes: %d not in [1024, %d]", c.MaxEventBytes, 64<<20))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("min_free_bytes: %d is negative", c.MinFreeBytes))
	} else if !c.InMemory && c.MinFreeBytes < MinFreeFloor {
		errs = append(errs, fmt.Errorf("min_free_bytes: %d is below %d (64 MiB): Badger's memory-mapped files would meet a full disk as SIGBUS, not as an error", c.MinFreeBytes, MinFreeFloor))
	}
	return errs
}

// validateMaintenance appends the problems of the maintenance pass's
// fields to errs.
func (c Config) validateMaintenance(errs []error) []error {
	if c.GCInterval < time.Second {
		errs = append(errs, fmt.Errorf("gc_interval: %s is below 1s", c.GCInterval))
	}
	if c.GCDiscardRatio <= 0 || c.GCDiscardRatio >= 1 {
		errs = append(errs, fmt.Errorf("gc_discard_ratio: %g not in (0, 1)", c.GCDiscardRatio))
	}
	if c.ImageTTL < 0 {
		errs = append(errs, fmt.Errorf("image_ttl: %s is negative", c.ImageTTL))
	}
	if c.BucketRetention < 0 {
		errs = append(errs, fmt.Errorf("bucket_retention: %s is negative", c.BucketRetention))
	}
	return errs
}
