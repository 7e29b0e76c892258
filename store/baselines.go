package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// baselines keeps the per-image baselines over the store's Badger handle:
// one record per image (last flush, the pipeline's meta) and the count
// blobs per (image, bucket, flush). Its methods are the DB's (embedded):
// scorer.Baselines, the admin operations, Export and Import. Writes take
// mu, which also guards the flush sequence.
type baselines struct {
	h            *handle
	log          zerolog.Logger
	now          func() time.Time
	flushSeconds prometheus.Observer

	mu        sync.Mutex
	flushNext uint64 // next baseline flush sequence
}

func newBaselines(h *handle, log zerolog.Logger, now func() time.Time, flushSeconds prometheus.Observer) *baselines {
	return &baselines{h: h, log: log, now: now, flushSeconds: flushSeconds, flushNext: 1}
}

// loadFlushNext resumes the flush sequence above its stored high-water mark.
func (bl *baselines) loadFlushNext(txn *badger.Txn) error {
	item, err := txn.Get(flushSeqKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := counterValue(item)
	bl.flushNext = max(bl.flushNext, n)
	return err
}

// ErrNotFound is returned for an image the store does not hold.
var ErrNotFound = errors.New("not found")

// FlushError is returned by PutDeltas when the flush was split across
// transactions and a later one failed: Stored lists the images whose deltas
// are stored (each image is all or nothing). Retrying only the other images
// avoids counting the stored ones twice.
type FlushError struct {
	Stored []string
	Err    error
}

func (e *FlushError) Error() string {
	return fmt.Sprintf("put deltas: %d images stored before: %v", len(e.Stored), e.Err)
}

func (e *FlushError) Unwrap() error { return e.Err }

// StoredImages lists the images stored before the failure (the pipeline
// retries only the others; see scorer.Baselines).
func (e *FlushError) StoredImages() []string { return e.Stored }

// PutDeltas stores one flush of learned counts. Each delta with non-empty
// Counts becomes a new blob under (image, bucket, flush sequence): blobs are
// never overwritten, so several may exist for one (image, bucket) and the
// reader sums them. Each image's meta is replaced by the last non-nil Meta
// among its deltas (kept as it was when all are nil) and its last-seen time
// set to now. All of an image's entries land in one transaction; a flush of
// many images uses as few transactions as the size limits allow.
func (bl *baselines) PutDeltas(deltas []scorer.BaselineDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	g, err := groupDeltas(deltas)
	if err != nil {
		return err
	}
	if err := bl.h.acquire(); err != nil {
		return fmt.Errorf("put deltas: %w", err)
	}
	defer bl.h.life.RUnlock()
	start := time.Now()
	bl.mu.Lock()
	defer bl.mu.Unlock()
	f := &deltaFlush{bl: bl, deltas: deltas, now: bl.now(), seq: bl.flushNext, b: bl.h.newBatch()}
	defer f.b.discard()
	bl.flushNext += uint64(g.blobs) // reserved in the first transaction below
	if err := f.b.set(flushSeqKey(), encodeU64(bl.flushNext)); err != nil {
		return f.fail(err)
	}
	for _, image := range g.order {
		if err := f.putImage(image, g.byImage[image]); err != nil {
			return f.fail(err)
		}
	}
	if err := f.b.commit(); err != nil {
		return f.fail(err)
	}
	bl.flushSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// deltaGroups is one flush's deltas grouped by image, checked before any
// lock is taken.
type deltaGroups struct {
	order   []string         // images in order of first appearance
	byImage map[string][]int // image -> indexes of its deltas
	blobs   int              // deltas with counts: flush sequences to reserve
}

func groupDeltas(deltas []scorer.BaselineDelta) (deltaGroups, error) {
	g := deltaGroups{byImage: map[string][]int{}}
	for i, dl := range deltas {
		if err := checkImage(dl.Image); err != nil {
			return g, fmt.Errorf("put deltas: %w", err)
		}
		if len(dl.Counts) > 0 {
			if err := checkTime("bucket", dl.Bucket); err != nil {
				return g, fmt.Errorf("put deltas %s: %w", scorer.TruncateForLog(dl.Image), err)
			}
			g.blobs++
		}
		if _, ok := g.byImage[dl.Image]; !ok {
			g.order = append(g.order, dl.Image)
		}
		g.byImage[dl.Image] = append(g.byImage[dl.Image], i)
	}
	return g, nil
}

// deltaFlush writes one PutDeltas call, image by image, and remembers which
// images earlier transactions committed so that a failure can name them
// (FlushError). The baselines' mu is held for its whole life.
type deltaFlush struct {
	bl     *baselines
	deltas []scorer.BaselineDelta
	now    time.Time
	seq    uint64 // the next flush sequence, reserved by PutDeltas
	b      *batch
	stored []string // images committed by earlier transactions
	inTxn  []string // images in the open transaction
}

// fail wraps err as PutDeltas returns it: a FlushError once some images
// are stored.
func (f *deltaFlush) fail(err error) error {
	if len(f.stored) == 0 {
		return fmt.Errorf("put deltas: %w", err)
	}
	return &FlushError{Stored: f.stored, Err: err}
}

// putImage writes one image's blobs and record into the open transaction,
// committing it first when the image would not fit, so that an image is
// always all or nothing.
func (f *deltaFlush) putImage(image string, idx []int) error {
	var meta []byte
	size := 0
	for _, i := range idx {
		size += len(f.deltas[i].Counts) + len(image) + 40
		if f.deltas[i].Meta != nil {
			meta = f.deltas[i].Meta
		}
	}
	size += len(meta)
	commits := f.b.commits
	if err := f.b.room(len(idx)+1, size); err != nil {
		return err
	}
	if f.b.commits != commits {
		f.stored, f.inTxn = append(f.stored, f.inTxn...), f.inTxn[:0]
	}
	if meta == nil {
		var err error
		if meta, err = f.keptMeta(image); err != nil {
			return err
		}
	}
	for _, i := range idx {
		if len(f.deltas[i].Counts) == 0 {
			continue
		}
		if err := f.b.set(bucketKey(image, f.deltas[i].Bucket, f.seq), f.deltas[i].Counts); err != nil {
			return err
		}
		f.seq++
	}
	if err := f.b.set(imageKey(image), encodeImage(f.now, meta)); err != nil {
		return err
	}
	f.inTxn = append(f.inTxn, image)
	return nil
}

// keptMeta reads the meta image's record holds now, for a flush that
// brings none: nil when there is no record or it is unreadable.
func (f *deltaFlush) keptMeta(image string) ([]byte, error) {
	old, err := f.b.txn.Get(imageKey(image))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := old.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	_, meta, err := decodeImage(v)
	if errors.Is(err, errCorrupt) {
		// Unreadable, so no state to keep: the counts are written and the
		// record is replaced by one without meta (the image loads as
		// learning).
		f.bl.log.Warn().Err(err).Str("image", scorer.TruncateForLog(image)).Msg("replacing a corrupt baseline record")
		return nil, nil
	}
	return meta, err
}

// loadChunkBytes bounds the data LoadBaselines holds between callbacks.
const loadChunkBytes = 32 << 20

// LoadBaselines calls fn for each stored image, in key order, with its meta
// and its blobs whose bucket is at or after since, oldest first (several
// blobs may share a bucket). fn runs outside any transaction and may call
// the store; it stops the walk by returning an error, which is returned.
func (bl *baselines) LoadBaselines(since time.Time, fn func(image string, meta []byte, buckets []scorer.BaselineBucket) error) error {
	for from := []byte{prefixImage}; from != nil; {
		var chunk []loadedImage
		err := bl.h.view(func(txn *badger.Txn) error {
			var err error
			chunk, from, err = loadChunk(txn, from, timeNanos(since))
			return err
		})
		if err != nil {
			return fmt.Errorf("load baselines: %w", err)
		}
		for _, r := range chunk {
			if err := fn(r.image, r.meta, r.buckets); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadedImage is one image read by LoadBaselines.
type loadedImage struct {
	image   string
	meta    []byte
	buckets []scorer.BaselineBucket
}

// loadChunk reads the images from key from on, with their blobs from
// bucket since, until about loadChunkBytes are read. next is the key to
// read on from, nil after the last image.
func loadChunk(txn *badger.Txn, from []byte, since uint64) (chunk []loadedImage, next []byte, err error) {
	imgs := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{prefixImage}})
	defer imgs.Close()
	bkts := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixBucket}})
	defer bkts.Close()
	size := 0
	for imgs.Seek(from); imgs.Valid(); imgs.Next() {
		if size >= loadChunkBytes {
			return chunk, imgs.Item().KeyCopy(nil), nil
		}
		image, err := parseImageKey(imgs.Item().Key())
		if err != nil {
			return nil, nil, err
		}
		v, err := imgs.Item().ValueCopy(nil)
		if err != nil {
			return nil, nil, err
		}
		_, meta, err := decodeImage(v)
		if err != nil {
			return nil, nil, err
		}
		r := loadedImage{image: image, meta: meta}
		size += len(v)
		if r.buckets, err = scanBuckets(bkts, image, since, ^uint64(0), &size); err != nil {
			return nil, nil, err
		}
		chunk = append(chunk, r)
	}
	return chunk, nil, nil
}

// scanBuckets reads the image's blobs with bucket in [from, to) using an
// iterator over the bucket prefix.
func scanBuckets(it *badger.Iterator, image string, from, to uint64, size *int) ([]scorer.BaselineBucket, error) {
	prefix := imagePrefix(prefixBucket, image)
	var out []scorer.BaselineBucket
	for it.Seek(u64(append([]byte(nil), prefix...), from)); it.ValidForPrefix(prefix); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+16 {
			return nil, fmt.Errorf("bucket key %x: %w", k, errCorrupt)
		}
		if be64(k[len(prefix):]) >= to {
			break
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		*size += len(v) + len(k)
		out = append(out, scorer.BaselineBucket{Bucket: nanosTime(be64(k[len(prefix):])), Counts: v})
	}
	return out, nil
}

// ImageBuckets returns the image's blobs with bucket in [from, to), oldest
// first.
func (bl *baselines) ImageBuckets(image string, from, to time.Time) ([]scorer.BaselineBucket, error) {
	if err := checkImage(image); err != nil {
		return nil, fmt.Errorf("image buckets: %w", err)
	}
	if !to.After(from) {
		return nil, nil
	}
	var out []scorer.BaselineBucket
	err := bl.h.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: imagePrefix(prefixBucket, image)})
		defer it.Close()
		var size int
		var err error
		out, err = scanBuckets(it, image, timeNanos(from), timeNanos(to), &size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image buckets %s: %w", image, err)
	}
	return out, nil
}

// DropBucketsBefore deletes the blobs of every image whose bucket starts
// before t.
func (bl *baselines) DropBucketsBefore(t time.Time) error {
	if err := bl.h.acquire(); err != nil {
		return fmt.Errorf("drop buckets: %w", err)
	}
	defer bl.h.life.RUnlock()
	_, err := bl.dropBucketsBefore(t)
	return err
}

// dropBucketsBefore walks the bucket keys (keys only), seeking past each
// image as soon as its buckets reach t, and deletes the older ones.
func (bl *baselines) dropBucketsBefore(t time.Time) (int, error) {
	cut := timeNanos(t)
	wb := bl.h.bdb.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := bl.h.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixBucket}})
		defer it.Close()
		it.Rewind()
		for it.Valid() {
			k := it.Item().Key()
			image, bucket, _, err := parseBucketKey(k)
			if err != nil {
				return err
			}
			if timeNanos(bucket) < cut {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					return err
				}
				n++
				it.Next()
				continue
			}
			// The rest of this image is recent: skip to the next image.
			it.Seek(append(imagePrefix(prefixBucket, image), bytesFF[:]...))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("drop buckets: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("drop buckets: %w", err)
	}
	return n, nil
}

// bytesFF sorts after any bucket suffix (16 bytes).
var bytesFF = [17]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// dropIdleImages resets every image whose last flush is before cutoff.
func (bl *baselines) dropIdleImages(cutoff time.Time) (int, error) {
	var idle []string
	err := bl.h.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{prefixImage}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var last time.Time
			err := it.Item().Value(func(v []byte) error {
				var err error
				last, _, err = decodeImage(v)
				return err
			})
			if err != nil {
				return err
			}
			if last.Before(cutoff) {
				image, err := parseImageKey(it.Item().Key())
				if err != nil {
					return err
				}
				idle = append(idle, image)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("find idle images: %w", err)
	}
	n := 0
	for _, image := range idle {
		ok, err := bl.resetImage(image, cutoff)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// ResetImage deletes an image's meta and all its blobs and reports whether
// the image existed. The running pipeline keeps its in-memory model; the
// caller must tell it (see admin's OnChange hook).
func (bl *baselines) ResetImage(image string) (bool, error) {
	if err := checkImage(image); err != nil {
		return false, fmt.Errorf("reset image: %w", err)
	}
	if err := bl.h.acquire(); err != nil {
		return false, fmt.Errorf("reset image: %w", err)
	}
	defer bl.h.life.RUnlock()
	return bl.resetImage(image, time.Time{})
}

// resetImage deletes the image; with a non-zero idleBefore it does so only
// if the image is still idle (a flush may have landed since it was chosen).
func (bl *baselines) resetImage(image string, idleBefore time.Time) (bool, error) {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	b := bl.h.newBatch()
	defer b.discard()
	existed, err := bl.deleteImage(b, image, idleBefore)
	if err != nil || !existed {
		return false, err
	}
	if err := b.commit(); err != nil {
		return false, fmt.Errorf("reset image %s: %w", image, err)
	}
	return true, nil
}

// deleteImage adds the deletion of image's keys to b (blobs first, the meta
// last, so a split deletion never leaves blobs without meta). mu must be
// held.
func (bl *baselines) deleteImage(b *batch, image string, idleBefore time.Time) (bool, error) {
	item, err := b.txn.Get(imageKey(image))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reset image %s: %w", image, err)
	}
	if !idleBefore.IsZero() {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return false, fmt.Errorf("reset image %s: %w", image, err)
		}
		last, _, err := decodeImage(v)
		if err != nil {
			return false, fmt.Errorf("reset image %s: %w", image, err)
		}
		if !last.Before(idleBefore) {
			return false, nil
		}
	}
	var keys [][]byte
	prefix := imagePrefix(prefixBucket, image)
	it := b.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	if err := b.room(len(keys)+1, len(keys)*(len(prefix)+32)); err != nil {
		return false, fmt.Errorf("reset image %s: %w", image, err)
	}
	for _, k := range append(keys, imageKey(image)) {
		if err := b.del(k); err != nil {
			return false, fmt.Errorf("reset image %s: %w", image, err)
		}
	}
	return true, nil
}

// ImageInfo summarizes one stored image for the admin commands.
type ImageInfo struct {
	Image     string    `json:"image"`
	LastSeen  time.Time `json:"last_seen"`             // last baseline flush
	MetaBytes int       `json:"meta_bytes"`            // size of the pipeline's meta
	Buckets   int       `json:"buckets"`               // distinct time buckets
	Blobs     int       `json:"blobs"`                 // stored count blobs (several per bucket)
	Bytes     int64     `json:"bytes"`                 // keys and values, before compression
	First     time.Time `json:"first_bucket,omitzero"` // oldest bucket start
	Last      time.Time `json:"last_bucket,omitzero"`  // newest bucket start
	Meta      []byte    `json:"-"`
}

// Images lists every stored image, in key order (by name length, then name).
func (bl *baselines) Images() ([]ImageInfo, error) {
	var out []ImageInfo
	err := bl.h.view(func(txn *badger.Txn) error {
		imgs := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100, Prefix: []byte{prefixImage}})
		defer imgs.Close()
		bkts := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixBucket}})
		defer bkts.Close()
		for imgs.Rewind(); imgs.Valid(); imgs.Next() {
			info, err := imageInfo(imgs.Item(), bkts)
			if err != nil {
				return err
			}
			out = append(out, info)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}

// Image returns one image's summary and all its blobs, oldest first, or an
// error wrapping ErrNotFound.
func (bl *baselines) Image(image string) (ImageInfo, []scorer.BaselineBucket, error) {
	if err := checkImage(image); err != nil {
		return ImageInfo{}, nil, fmt.Errorf("show image: %w", err)
	}
	var info ImageInfo
	var buckets []scorer.BaselineBucket
	err := bl.h.view(func(txn *badger.Txn) error {
		item, err := txn.Get(imageKey(image))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		bkts := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixBucket}})
		defer bkts.Close()
		if info, err = imageInfo(item, bkts); err != nil {
			return err
		}
		var size int
		buckets, err = scanBuckets(bkts, image, 0, ^uint64(0), &size)
		return err
	})
	if err != nil {
		return ImageInfo{}, nil, fmt.Errorf("show image %s: %w", image, err)
	}
	return info, buckets, nil
}

func imageInfo(item *badger.Item, bkts *badger.Iterator) (ImageInfo, error) {
	image, err := parseImageKey(item.Key())
	if err != nil {
		return ImageInfo{}, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return ImageInfo{}, err
	}
	last, meta, err := decodeImage(v)
	if err != nil {
		return ImageInfo{}, err
	}
	info := ImageInfo{Image: image, LastSeen: last, MetaBytes: len(meta), Meta: meta,
		Bytes: int64(len(item.Key()) + len(v))}
	prefix := imagePrefix(prefixBucket, image)
	var prev uint64
	for bkts.Seek(prefix); bkts.ValidForPrefix(prefix); bkts.Next() {
		k := bkts.Item().Key()
		if len(k) != len(prefix)+16 {
			return ImageInfo{}, fmt.Errorf("bucket key %x: %w", k, errCorrupt)
		}
		bucket := be64(k[len(prefix):])
		if info.Blobs == 0 || bucket != prev {
			info.Buckets++
		}
		if info.Blobs == 0 {
			info.First = nanosTime(bucket)
		}
		info.Last = nanosTime(bucket)
		prev = bucket
		info.Blobs++
		info.Bytes += int64(len(k)) + int64(bkts.Item().ValueSize())
	}
	return info, nil
}

// ErrConflict is returned by CompactBucket when the bucket changed since
// its blobs were read.
var ErrConflict = errors.New("bucket changed since it was read")

// CompactBucket replaces the blobs of one (image, bucket) by merged, their
// sum, in one transaction: a reader sees either the old blobs or the merged
// one. expect is the number of blobs the caller read and merged; if the
// bucket now holds another number, nothing changes and ErrConflict is
// returned. Flushing every few seconds writes hundreds of blobs per image
// and hour, so the pipeline compacts each bucket once it is closed.
func (bl *baselines) CompactBucket(image string, bucket time.Time, expect int, merged []byte) error {
	if err := checkImage(image); err != nil {
		return fmt.Errorf("compact bucket: %w", err)
	}
	if err := checkTime("bucket", bucket); err != nil {
		return fmt.Errorf("compact bucket %s: %w", image, err)
	}
	if len(merged) == 0 {
		return fmt.Errorf("compact bucket %s: empty merged counts", image)
	}
	if err := bl.h.acquire(); err != nil {
		return fmt.Errorf("compact bucket: %w", err)
	}
	defer bl.h.life.RUnlock()
	bl.mu.Lock()
	defer bl.mu.Unlock()
	prefix := u64(imagePrefix(prefixBucket, image), timeNanos(bucket))
	err := bl.h.bdb.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		if len(keys) != expect {
			return fmt.Errorf("%w: %d blobs, expected %d", ErrConflict, len(keys), expect)
		}
		if expect <= 1 {
			return nil // nothing to gain
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		flush := bl.flushNext
		bl.flushNext++
		if err := txn.Set(flushSeqKey(), encodeU64(bl.flushNext)); err != nil {
			return err
		}
		return txn.Set(bucketKey(image, bucket, flush), merged)
	})
	if err != nil {
		return fmt.Errorf("compact bucket %s %s: %w", image, bucket.Format(time.RFC3339), err)
	}
	return nil
}
