package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// Baseline export format: JSON lines. The first line is the header; then,
// for each image, one "image" record followed by its "bucket" records in
// bucket order. Blobs are base64 (encoding/json's []byte form). Version 2
// adds the number of bucket records to each image record, so that a file
// cut short inside its last image is refused rather than imported as a
// partial baseline; version 1 files (without it) are still read.
const (
	ExportFormat  = "falco-scorer-baselines"
	ExportVersion = 2
)

// ExportHeader is the first line of an export file.
type ExportHeader struct {
	Format     string    `json:"format"`  // ExportFormat
	Version    int       `json:"version"` // ExportVersion
	ExportedAt time.Time `json:"exported_at"`
	Images     int       `json:"images"` // number of image records that follow
}

// ExportRecord is one line after the header: Kind "image" carries LastSeen
// and Meta, Kind "bucket" carries Bucket and Counts.
type ExportRecord struct {
	Kind     string     `json:"kind"`
	Image    string     `json:"image"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Meta     []byte     `json:"meta,omitempty"`
	Buckets  *int       `json:"buckets,omitempty"` // image records (version 2): bucket records that follow
	Bucket   *time.Time `json:"bucket,omitempty"`
	Counts   []byte     `json:"counts,omitempty"`
}

// Export writes the named images (all images when none are named) to w
// from one consistent snapshot and returns how many it wrote. Naming an
// image the store does not hold is an error wrapping ErrNotFound, reported
// before anything is written.
func (bl *baselines) Export(w io.Writer, images ...string) (int, error) {
	n := 0
	err := bl.h.view(func(txn *badger.Txn) error {
		keys, err := exportKeys(txn, images)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		if err := enc.Encode(ExportHeader{Format: ExportFormat, Version: ExportVersion, ExportedAt: bl.now().UTC(), Images: len(keys)}); err != nil {
			return err
		}
		bkts := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 16, Prefix: []byte{prefixBucket}})
		defer bkts.Close()
		for _, k := range keys {
			if err := exportImage(txn, bkts, enc, k); err != nil {
				return err
			}
			n++
		}
		return bw.Flush()
	})
	if err != nil {
		return 0, fmt.Errorf("export baselines: %w", err)
	}
	return n, nil
}

// exportKeys returns the image keys Export writes: every image's when
// images is empty, else the named ones, each checked to exist.
func exportKeys(txn *badger.Txn, images []string) ([][]byte, error) {
	var keys [][]byte
	if len(images) == 0 {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixImage}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return keys, nil
	}
	for _, image := range images {
		if err := checkImage(image); err != nil {
			return nil, err
		}
		if _, err := txn.Get(imageKey(image)); errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("image %q: %w", image, ErrNotFound)
		} else if err != nil {
			return nil, err
		}
		keys = append(keys, imageKey(image))
	}
	return keys, nil
}

// exportImage writes one image record (with the number of its bucket
// records) and then its bucket records, oldest first.
func exportImage(txn *badger.Txn, bkts *badger.Iterator, enc *json.Encoder, k []byte) error {
	image, err := parseImageKey(k)
	if err != nil {
		return err
	}
	item, err := txn.Get(k)
	if err != nil {
		return err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	last, meta, err := decodeImage(v)
	if err != nil {
		return err
	}
	prefix := imagePrefix(prefixBucket, image)
	nb := 0
	for bkts.Seek(prefix); bkts.ValidForPrefix(prefix); bkts.Next() {
		nb++
	}
	if err := enc.Encode(ExportRecord{Kind: "image", Image: image, LastSeen: &last, Meta: meta, Buckets: &nb}); err != nil {
		return err
	}
	for bkts.Seek(prefix); bkts.ValidForPrefix(prefix); bkts.Next() {
		_, bucket, _, err := parseBucketKey(bkts.Item().Key())
		if err != nil {
			return err
		}
		counts, err := bkts.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := enc.Encode(ExportRecord{Kind: "bucket", Image: image, Bucket: &bucket, Counts: counts}); err != nil {
			return err
		}
	}
	return nil
}

// ImportLimits bound what Import accepts from an untrusted file.
type ImportLimits struct {
	MaxLineBytes  int   // longest line (one record); default 16 MiB
	MaxImageBytes int64 // one image's meta and blobs together; default 256 MiB
	MaxImages     int   // image records in the file; default 1,000,000
}

// DefaultImportLimits returns the limits used when a field is zero.
func DefaultImportLimits() ImportLimits {
	return ImportLimits{MaxLineBytes: 16 << 20, MaxImageBytes: 256 << 20, MaxImages: 1_000_000}
}

// ImportError locates a problem in an import file. Images counts the
// images already imported (each image is imported whole or not at all).
type ImportError struct {
	Line   int
	Images int
	Err    error
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("import baselines: line %d: %v (%d images imported before it)", e.Line, e.Err, e.Images)
}

func (e *ImportError) Unwrap() error { return e.Err }

// Import reads an export file and stores its images. An imported image
// replaces a stored image of the same name (meta and all blobs), in one
// transaction when it fits. The file is untrusted: the header must name this
// format and version, every record is checked (known fields only, kinds,
// names, times, order, sizes) and the limits apply. It returns the names of
// the images imported, in file order; on error, those imported before it and
// an *ImportError saying where.
func (bl *baselines) Import(r io.Reader, lim ImportLimits) ([]string, error) {
	return bl.ImportWith(r, lim, nil)
}

// ImportWith is Import with each image's write run through around (when
// not nil): a running pipeline uses it to hold the image out of scoring
// while its baseline is replaced.
func (bl *baselines) ImportWith(r io.Reader, lim ImportLimits, around func(image string, write func() error) error) ([]string, error) {
	if around == nil {
		around = func(_ string, write func() error) error { return write() }
	}
	store := func(im *importImage) error {
		return around(im.image, func() error { return bl.importImage(im) })
	}
	return newImportParser(&errReader{r: r}, lim, store).run()
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

type importBucket struct {
	t      time.Time
	counts []byte
}

type importImage struct {
	image     string
	lastSeen  time.Time
	meta      []byte
	buckets   []importBucket
	announced int // bucket records the image record announced; -1: not said (version 1)
	size      int64
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid record: %w", err)
	}
	if dec.More() {
		return errors.New("invalid record: more than one JSON value on the line")
	}
	return nil
}

func validImageRecord(rec ExportRecord) error {
	if err := checkImage(rec.Image); err != nil {
		return err
	}
	if !utf8.ValidString(rec.Image) {
		return fmt.Errorf("image name %q is not UTF-8", rec.Image)
	}
	if rec.LastSeen == nil {
		return fmt.Errorf("image %q: missing last_seen", rec.Image)
	}
	if rec.Bucket != nil || rec.Counts != nil {
		return fmt.Errorf("image %q: image record with bucket fields", rec.Image)
	}
	return checkTime("last_seen", *rec.LastSeen)
}

func validBucketRecord(rec ExportRecord) error {
	if rec.Bucket == nil {
		return errors.New("bucket record without bucket")
	}
	if rec.LastSeen != nil || rec.Meta != nil || rec.Buckets != nil {
		return errors.New("bucket record with image fields")
	}
	if len(rec.Counts) == 0 {
		return errors.New("bucket record without counts")
	}
	return checkTime("bucket", *rec.Bucket)
}

// importImage replaces one image, atomically when it fits one transaction.
func (bl *baselines) importImage(im *importImage) error {
	if err := bl.h.acquire(); err != nil {
		return err
	}
	defer bl.h.life.RUnlock()
	bl.mu.Lock()
	defer bl.mu.Unlock()
	flush := bl.flushNext
	bl.flushNext += uint64(len(im.buckets))
	b := bl.h.newBatch()
	defer b.discard()
	if err := b.set(flushSeqKey(), encodeU64(bl.flushNext)); err != nil {
		return fmt.Errorf("import %s: %w", im.image, err)
	}
	if _, err := bl.deleteImage(b, im.image, time.Time{}); err != nil {
		return err
	}
	if err := b.room(len(im.buckets)+1, int(im.size)+len(im.buckets)*(len(im.image)+40)); err != nil {
		return fmt.Errorf("import %s: %w", im.image, err)
	}
	for _, bk := range im.buckets {
		if err := b.set(bucketKey(im.image, bk.t, flush), bk.counts); err != nil {
			return fmt.Errorf("import %s: %w", im.image, err)
		}
		flush++
	}
	if err := b.set(imageKey(im.image), encodeImage(im.lastSeen, im.meta)); err != nil {
		return fmt.Errorf("import %s: %w", im.image, err)
	}
	if err := b.commit(); err != nil {
		return fmt.Errorf("import %s: %w", im.image, err)
	}
	return nil
}
