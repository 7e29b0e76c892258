package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"time"
)

// importParser reads one export file for ImportWith: the header, then the
// records one by one, handing each image to store once its last bucket
// record has been read. It holds at most one image in memory, which is why
// an image is stored before the next one is parsed rather than after the
// whole file has been checked.
type importParser struct {
	er    *errReader
	sc    *bufio.Scanner
	lim   ImportLimits
	store func(*importImage) error

	line     int          // the line read last, 1-based
	version  int          // the header's format version
	images   int          // images the header announces
	cur      *importImage // the image being read, not yet stored
	seen     map[string]bool
	imported []string // images stored, in file order
}

// newImportParser fills in lim's unset limits from DefaultImportLimits.
func newImportParser(er *errReader, lim ImportLimits, store func(*importImage) error) *importParser {
	def := DefaultImportLimits()
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = def.MaxLineBytes
	}
	if lim.MaxImageBytes <= 0 {
		lim.MaxImageBytes = def.MaxImageBytes
	}
	if lim.MaxImages <= 0 {
		lim.MaxImages = def.MaxImages
	}
	sc := bufio.NewScanner(er)
	sc.Buffer(make([]byte, 0, min(64<<10, lim.MaxLineBytes)), lim.MaxLineBytes)
	return &importParser{er: er, sc: sc, lim: lim, store: store, seen: map[string]bool{}}
}

// run parses and stores the whole file. It returns the images stored, and
// on error an *ImportError naming the line.
func (p *importParser) run() ([]string, error) {
	if err := p.parse(); err != nil {
		if p.er.err != nil {
			// The scanner hands over a partial last line before it reports
			// a read error; the read error is the real cause.
			err = p.er.err
		}
		return p.imported, &ImportError{Line: p.line, Images: len(p.imported), Err: err}
	}
	return p.imported, nil
}

func (p *importParser) parse() error {
	if err := p.header(); err != nil {
		return err
	}
	for {
		b, ok, err := p.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := p.record(b); err != nil {
			return err
		}
	}
	if err := p.storeCurrent(); err != nil {
		return err
	}
	if len(p.imported) != p.images {
		return fmt.Errorf("header announces %d images, file holds %d (truncated file?)", p.images, len(p.imported))
	}
	return nil
}

// next returns the next non-blank line, or false at the end of the file.
func (p *importParser) next() ([]byte, bool, error) {
	for p.sc.Scan() {
		p.line++
		if b := bytes.TrimSpace(p.sc.Bytes()); len(b) > 0 {
			return b, true, nil
		}
	}
	if err := p.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			p.line++
			return nil, false, fmt.Errorf("line longer than %d bytes", p.lim.MaxLineBytes)
		}
		return nil, false, err
	}
	return nil, false, nil
}

func (p *importParser) header() error {
	b, ok, err := p.next()
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("empty file: want a header line")
	}
	var h ExportHeader
	if err := strictJSON(b, &h); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if h.Format != ExportFormat {
		return fmt.Errorf("header: format %q, want %q", h.Format, ExportFormat)
	}
	if h.Version != 1 && h.Version != ExportVersion {
		return fmt.Errorf("header: unsupported version %d (this build reads 1 and %d)", h.Version, ExportVersion)
	}
	p.version, p.images = h.Version, h.Images
	return nil
}

func (p *importParser) record(b []byte) error {
	var rec ExportRecord
	if err := strictJSON(b, &rec); err != nil {
		return err
	}
	switch rec.Kind {
	case "image":
		return p.image(rec)
	case "bucket":
		return p.bucket(rec)
	default:
		return fmt.Errorf("unknown record kind %q (want image or bucket)", rec.Kind)
	}
}

// image starts a new image, storing the one before it.
func (p *importParser) image(rec ExportRecord) error {
	if err := validImageRecord(rec); err != nil {
		return err
	}
	if p.seen[rec.Image] {
		return fmt.Errorf("image %q appears twice", rec.Image)
	}
	if len(p.seen) >= p.lim.MaxImages {
		return fmt.Errorf("more than %d images", p.lim.MaxImages)
	}
	switch {
	case p.version >= 2 && rec.Buckets == nil:
		return fmt.Errorf("image %q: missing buckets (the number of bucket records)", rec.Image)
	case rec.Buckets != nil && *rec.Buckets < 0:
		return fmt.Errorf("image %q: negative buckets", rec.Image)
	}
	p.seen[rec.Image] = true
	if err := p.storeCurrent(); err != nil {
		return err
	}
	p.cur = &importImage{image: rec.Image, lastSeen: *rec.LastSeen, meta: rec.Meta, size: int64(len(rec.Meta)), announced: -1}
	if rec.Buckets != nil {
		p.cur.announced = *rec.Buckets
	}
	return nil
}

// bucket adds a bucket record to the current image.
func (p *importParser) bucket(rec ExportRecord) error {
	cur := p.cur
	if cur == nil || rec.Image != cur.image {
		return fmt.Errorf("bucket record for image %q not after that image's record", rec.Image)
	}
	if err := validBucketRecord(rec); err != nil {
		return err
	}
	if n := len(cur.buckets); n > 0 && rec.Bucket.Before(cur.buckets[n-1].t) {
		return fmt.Errorf("bucket %s out of order", rec.Bucket.Format(time.RFC3339Nano))
	}
	cur.size += int64(len(rec.Counts))
	if cur.size > p.lim.MaxImageBytes {
		return fmt.Errorf("image %q larger than %d bytes", cur.image, p.lim.MaxImageBytes)
	}
	cur.buckets = append(cur.buckets, importBucket{t: *rec.Bucket, counts: rec.Counts})
	return nil
}

// storeCurrent stores the image read last, if any, after checking that it
// has every bucket its record announced (version 2).
func (p *importParser) storeCurrent() error {
	cur := p.cur
	if cur == nil {
		return nil
	}
	if cur.announced >= 0 && len(cur.buckets) != cur.announced {
		return fmt.Errorf("image %q: %d bucket records, its image record announces %d (truncated file?)", cur.image, len(cur.buckets), cur.announced)
	}
	if err := p.store(cur); err != nil {
		return err
	}
	p.imported = append(p.imported, cur.image)
	p.cur = nil
	return nil
}
