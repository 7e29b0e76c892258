// Package journal is a write-ahead log of opaque records in segment files:
// group commit, a background syncer, and recycling of segments whose
// records are all complete. It knows nothing of what the records mean or
// of where their completion is recorded: its user says which records are
// complete (Complete), what it knew at open (Options.Next, Floor, Done),
// and makes completions durable before a segment is recycled
// (Options.Retire). It must not import a storage engine.
//
// # Why its own files
//
// Syncing a database's sparse memory-mapped log cost 0.7-1.2 ms per group
// commit here. A segment is zero-filled (or recycled) before use, so a
// group commit is one pwrite into already allocated blocks and one
// fdatasync, which touches no metadata (about 0.1 ms on the same disk).
//
// # Durability
//
// One committer goroutine takes every queued Append (up to
// GroupCommitMaxEvents / GroupCommitMaxBytes), writes them with one pwrite
// and one fdatasync, then releases every caller (group commit); a lone
// appender writes its own group. With SyncInterval > 0 callers are released
// after the pwrite, and a background goroutine syncs the segments written
// since its last pass: a process crash still loses nothing, a power loss
// about one interval. After a failed background sync, groups sync before
// their release until restart, and the next group starts a new segment.
// While the file system has less than MinFreeBytes free, groups are refused
// (ErrLowDisk): segments are zero-filled when created, so the log's own
// writes never allocate blocks, but its user's may.
//
// # Concurrency
//
// Every method is safe for concurrent use. The log's goroutines (retirer,
// syncer, committer) are started by Open in that order and stopped by
// Close in reverse, each after its final step. Replay holds off recycling
// while it reads.
package journal
