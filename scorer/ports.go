package scorer

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The interfaces below are what the scorer needs from the outside world. They
// are declared here, next to their user, so that dependencies point toward
// scorer: store implements Journal, Outbox and Baselines; scorer/source calls
// an Acceptor; sinks drains an Outbox.

// ErrOverloaded means the service is at capacity and accepted nothing; HTTP
// answers 429, gRPC input backs off.
var ErrOverloaded = errors.New("overloaded: ingest queue full")

// ErrBacklogged is the ErrOverloaded of a full outbox: the sinks are behind,
// and since alerts are never dropped, events are refused until they catch
// up.
var ErrBacklogged = fmt.Errorf("%w: sinks are behind (outbox full)", ErrOverloaded)

// ErrUnavailable means events could not be made durable (for example the
// data directory is full or unwritable); nothing was accepted. HTTP answers 503.
var ErrUnavailable = errors.New("unavailable: cannot persist events")

// ErrTooLarge means an event is larger than the journal takes
// (store.max_event_bytes); nothing was accepted, and retrying the same events
// cannot help. HTTP answers 413; the gRPC input drops that event and counts
// it.
var ErrTooLarge = errors.New("event too large")

// Acceptor takes decoded events from an input. Accept returns nil only when
// every event is durable and queued for scoring; on error none was accepted.
// It is safe for concurrent use.
type Acceptor interface {
	Accept(ctx context.Context, source string, events []Event) error
}

// Journal durably records accepted events until their alerts are in the
// outbox. Implementations group-commit: concurrent Appends share one sync.
type Journal interface {
	// Append writes the raw Falco JSON events and returns once they are
	// synced, with the sequence number of each.
	Append(ctx context.Context, raws [][]byte) ([]uint64, error)
	// Complete atomically writes the outbox entries and removes the journal
	// entries: after it returns, the events' alerts are safe in the outbox.
	Complete(done []uint64, alerts []OutboxPut) error
	// Replay calls fn for every journal entry not yet completed, oldest first.
	Replay(fn func(seq uint64, raw []byte) error) error
}

// OutboxPut is one alert queued for one sink.
type OutboxPut struct {
	Sink    string
	AlertID string
	Payload []byte       // the alert's JSON (Alert.MarshalJSON)
	Header  *AlertHeader // the alert's header, what DecodeAlertHeader reads from Payload
}

// OutboxEntry is one pending (alert, sink) delivery.
type OutboxEntry struct {
	Sink     string
	Seq      uint64 // orders entries of one sink; increases with time
	AlertID  string
	Payload  []byte
	Enqueued time.Time
	// Header is the alert's header when the outbox still had it in memory
	// (an entry it hands out soon after its commit); nil otherwise, and
	// then DecodeAlertHeader(Payload) gives it.
	Header *AlertHeader
}

// Outbox is the durable per-sink delivery queue.
type Outbox interface {
	// Pending returns up to limit entries of sink with Seq > after, in Seq order.
	Pending(sink string, after uint64, limit int) ([]OutboxEntry, error)
	// Ack removes delivered entries.
	Ack(sink string, seqs []uint64) error
	// DeadLetter moves an entry that cannot be delivered to the dead-letter set.
	DeadLetter(e OutboxEntry, reason string) error
}

// BaselineDelta is one flush of one image's learned counts for one time
// bucket. Counts is the markov package's encoded delta; store treats it as
// opaque bytes. Meta is the pipeline's encoded per-image state (maturity,
// calibration), replaced on every flush.
type BaselineDelta struct {
	Image  string
	Bucket time.Time // start of the bucket (truncated to the bucket size)
	Counts []byte
	Meta   []byte
}

// PartialFlush is implemented by a PutDeltas error when some images were
// stored before the failure.
type PartialFlush interface {
	error
	StoredImages() []string
}

// BaselineBucket is one stored bucket of an image's counts.
type BaselineBucket struct {
	Bucket time.Time
	Counts []byte
}

// Baselines stores rolling per-image baselines.
type Baselines interface {
	// PutDeltas writes the deltas atomically per image. When a flush fails
	// part way, the error implements PartialFlush and names the images
	// already stored, which must not be written again.
	PutDeltas(deltas []BaselineDelta) error
	// LoadBaselines calls fn for each stored image with its meta and its
	// buckets at or after since, oldest first.
	LoadBaselines(since time.Time, fn func(image string, meta []byte, buckets []BaselineBucket) error) error
	// ImageBuckets returns the image's buckets in [from, to), oldest first
	// (the pipeline subtracts a bucket's counts when it leaves the horizon).
	ImageBuckets(image string, from, to time.Time) ([]BaselineBucket, error)
	// DropBucketsBefore deletes buckets older than t for all images.
	DropBucketsBefore(t time.Time) error
}

// ImageLoader is optionally implemented by a Baselines store that can load
// one image on demand (an image evicted from memory, or imported through the
// admin API while the service runs).
type ImageLoader interface {
	// LoadImage returns the image's meta and its buckets at or after since;
	// found is false when the store has no such image.
	LoadImage(image string, since time.Time) (meta []byte, buckets []BaselineBucket, found bool, err error)
}

// BucketCompactor is optionally implemented by a Baselines store that can
// replace a closed bucket's blobs (one per flush) by their sum.
type BucketCompactor interface {
	// CompactBucket replaces the expect blobs of (image, bucket) by merged,
	// atomically; it fails without change when the bucket holds another
	// number of blobs.
	CompactBucket(image string, bucket time.Time, expect int, merged []byte) error
}
