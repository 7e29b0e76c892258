// Package store keeps everything falco-scorer must not lose in one data
// directory: the journal of accepted events (segment files under
// <dir>/journal), and in Badger the per-sink outbox and its dead letters and
// the rolling per-image baselines. It is the only package that imports
// github.com/dgraph-io/badger/v4. A *DB implements scorer.Journal,
// scorer.Outbox and scorer.Baselines, plus the admin operations used by the
// `baselines` command and the HTTP admin API (package store/admin).
//
// A DB composes one part per concern: the journal (package store/journal,
// which knows nothing of Badger), and over one Badger handle (handle.go:
// the handle, its lifetime guard, transaction batches) the outbox
// (outbox.go, recent.go) and the baselines (baselines.go, export.go,
// importparse.go). DB itself keeps the glue between them: the journal's
// done markers and floor (journal.go), Open and Close (db.go), the format
// record (format.go) and maintenance (maintain.go).
//
// It must not interpret what it stores: journal entries are Falco JSON,
// outbox payloads are alert JSON, baseline counts and meta are the model's
// and the pipeline's encodings, all opaque bytes here.
//
// # Durability
//
// The journal is a write-ahead log of its own (package store/journal),
// because syncing Badger's sparse memory-mapped log cost 0.7-1.2 ms per
// group commit here against about 0.1 ms for an fdatasync into a
// preallocated file. It groups concurrent Appends into one pwrite and one
// fdatasync (group_commit_max_events / group_commit_max_bytes); with
// journal_sync_interval > 0 it releases them after the pwrite and syncs in
// the background: a process crash still loses nothing, a power loss about
// one interval. The journal knows nothing of Badger: which events are
// complete is the store's to record (done markers and the floor, below),
// and the journal asks the store (retireBelow) to make those durable before
// it recycles a segment.
//
// Badger runs with SyncWrites off. Complete writes the outbox entries and a
// done marker for the events in one transaction (several, the marker last,
// for a call beyond Badger's transaction limits), without a sync; every
// other write (Ack, DeadLetter, PutDeltas, admin) commits without a sync
// too. A committed transaction is in Badger's memory-mapped write-ahead log,
// i.e. the page cache, and survives a process crash (SIGKILL, OOM kill). On
// power loss an unsynced transaction is dropped whole by Badger's replay;
// its events are then still pending in the journal and are scored again
// (duplicate alerts with the same ids, never losses), because a journal
// segment is recycled only after a Badger sync has made its events' outbox
// entries and done markers durable, followed by a synced floor.
//
// Badger's files are sparse and memory-mapped: writing a new page on a full
// file system raises SIGBUS rather than ENOSPC. The journal therefore
// refuses appends (scorer.ErrUnavailable, reason no_space) while free space
// is below min_free_bytes, and maps every other write or sync failure to
// scorer.ErrUnavailable too, logging once per kind of failure and once on
// recovery. Journal segments are zero-filled when created, so the journal's
// own writes never allocate blocks.
//
// # Key layout (format version 1)
//
// Every key starts with a one-byte prefix. Integers are big-endian unsigned,
// so keys sort numerically; times are Unix nanoseconds (u64, never before
// 1970); sink names are 1..255 bytes with a u8 length prefix, image names
// 1..4096 bytes with a u16 length prefix, so that one name's keys never
// interleave with another's that it prefixes.
//
//	key                                        value
//	0x00                                       u32 format version (3)
//	0x01 | seq u64                             format 1 only: journal entry (refused at open)
//	0x02                                       format 1 only: u64 next journal seq (read at open)
//	0x03 | len u8 | sink | seq u64             outbox entry: enqueued u64 | idlen u16 | alert id | payload, or
//	                                           (format 3, idlen's top bit set) enqueued u64 | idlen|0x8000 u16 |
//	                                           alert id | codec u8 | packed payload; codec 1: uvarint length,
//	                                           deflate with the preset dictionary outboxDict1 (outboxcodec.go)
//	0x04 | len u8 | sink                       u64 next outbox seq of sink (high-water mark)
//	0x05 | len u8 | sink | seq u64             dead letter: enqueued u64 | dead u64 | idlen u16 | alert id |
//	                                           reasonlen u16 | reason | payload
//	0x06 | len u16 | image                     image meta: last flush u64 | meta
//	0x07 | len u16 | image | bucket u64 | flush u64
//	                                           one flush's counts blob for that bucket
//	                                           (CompactBucket later replaces a closed bucket's blobs by their sum)
//	0x08                                       u64 next flush seq (high-water mark)
//	0x09 | max seq u64 | id u64                done marker: the journal seqs completed by one
//	                                           Complete, ascending, as uvarint deltas
//	0x0a                                       u64 journal floor: seqs below it are complete
//
// Journal segment files (<dir>/journal/<id>.wal, spares spare-*.wal) hold a
// header, "FSJL" | u32 version (1) | u64 segment id, then records:
// u32 length | u32 CRC-32C of (segment id, seq, payload) | u64 seq |
// payload, all little-endian. See package journal for how a scan finds the
// end.
//
// Sequences are never reused: a writer stores the high-water mark covering
// every sequence it is about to use in its first transaction, and Open
// resumes above both the marks and the highest keys present. Journal
// sequences resume above the highest valid record and the floor. A dead letter
// keeps its outbox seq; replaying it gives it a new one. Baseline blobs are
// append-only: several may exist for one (image, bucket), one per flush, and
// readers sum them. Any change to this table needs a new FormatVersion; the
// golden test in keys_test.go pins the bytes, segment files included.
//
// # Concurrency
//
// Every method is safe for concurrent use. Journal appends are serialized by
// the journal's committer; outbox sequence allocation and its commit share one mutex,
// so a sink's entries become visible in sequence order and a reader's cursor
// (Pending's after) never skips one; the same mutex guards the in-memory
// copy of each sink's just-committed entries that Pending answers from when
// it can (recent.go); baseline writes share another. Close
// closes the journal first (its goroutines stop in the reverse of their
// start), waits for running operations and the maintenance pass, then
// closes Badger; Run does maintenance until its context ends. Badger allows one
// process per directory: the CLI works only on a stopped service's data
// directory, the admin API on the running one.
package store
