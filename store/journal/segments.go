package journal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Segment file: a 16-byte header, magic "FSJL" | u32 version | u64 segment
// id, then records: u32 payload length | u32 CRC-32C | u64 seq | payload,
// all little-endian. The CRC covers the segment id, the seq and the
// payload, so the records a recycled file still holds from its previous
// life never validate. A scan stops at the first record that is short,
// fails its CRC or does not raise the sequence: that is the end of the log
// (a torn group was never acknowledged). Which records are complete is the
// user's to record durably (Options.Done and Floor at open, Retire before a
// segment is recycled); the log keeps only a count per segment.
const (
	HeaderBytes       = 16 // segment header
	RecordHeaderBytes = 16 // before each record's payload
	walMagic          = "FSJL"
	walVersion        = 1
	// MaxSpares is how many recycled segment files are kept for reuse.
	MaxSpares = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one journal file.
type segment struct {
	id          uint64
	f           *os.File
	size        int64  // file size
	end         int64  // offset after the last durable record
	first, last uint64 // sequences written here; first == 0 while empty
	outstanding int    // records not yet completed
}

// wal owns the segment files. The committer goroutine is the only writer of
// the active (last) segment; Complete, the retirer and Replay take mu.
type wal struct {
	dir      string
	segBytes int64

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one is active
	spares  []*os.File // zero-filled or recycled files of segBytes, ready for reuse
	nextID  uint64
	total   int        // outstanding records in all segments
	readers int        // Replays running: no segment retires meanwhile (they read the files)
	dirty   []*segment // written but not yet synced (journal_sync_interval > 0 only)
	// rotateNext makes the next group start a new segment: after a failed
	// sync, the failed range may be a hole that would hide every later
	// record of its segment from a scan.
	rotateNext bool
	stale      []*os.File // handles of reused spares, closed by closeStale off the ack path

	// closing is held for writing while segment files are closed, and for
	// reading by syncDirty, which syncs files it no longer tracks under mu.
	closing sync.RWMutex

	buf []byte // the committer's encoding buffer

	syncFile func(*os.File) error // datasync; tests inject failures
	synced   func()               // counts every sync (metrics); never nil
}

// sync syncs f's data and counts the sync.
func (w *wal) sync(f *os.File) error {
	w.synced()
	return w.syncFile(f)
}

// RecordCRC is the CRC-32C a record stores: over the segment id, the
// sequence and the payload.
func RecordCRC(segID, seq uint64, payload []byte) uint32 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], segID)
	binary.LittleEndian.PutUint64(b[8:], seq)
	return crc32.Update(crc32.Checksum(b[:], castagnoli), castagnoli, payload)
}

// openWAL reads every segment in dir, counting the records at or above
// floor that done does not mark complete. lastSeq is the highest sequence
// in a valid record (0 if none).
func openWAL(dir string, segBytes int64, floor uint64, done map[uint64]struct{}) (w *wal, lastSeq uint64, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, 0, err
	}
	w = &wal{dir: dir, segBytes: segBytes, nextID: 1, syncFile: DataSync, synced: func() {}}
	// A crash while a spare was being zero-filled leaves its temporary
	// file behind; nothing else would ever remove it.
	if tmps, err := filepath.Glob(filepath.Join(dir, "spare-*.tmp")); err == nil {
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, 0, err
	}
	for _, name := range names {
		if err := w.load(name); err != nil {
			w.closeFiles()
			return nil, 0, err
		}
	}
	slices.SortFunc(w.segs, func(a, b *segment) int { return cmp.Compare(a.id, b.id) })
	for _, s := range w.segs {
		w.nextID = max(w.nextID, s.id+1)
		if lastSeq, err = w.count(s, lastSeq, floor, done); err != nil {
			w.closeFiles()
			return nil, 0, fmt.Errorf("journal segment %d: %w", s.id, err)
		}
	}
	return w, lastSeq, nil
}

// load opens one file of the journal's directory as a segment, or as a
// spare when it was never written.
func (w *wal) load(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	s, err := readSegmentHeader(f)
	switch {
	case errors.Is(err, errUnusedSegment):
		// Zero-filled and never written: a spare, or a segment whose
		// first group never synced (nothing in it was acknowledged).
		if fi, statErr := f.Stat(); statErr == nil && fi.Size() == w.segBytes {
			w.spares = append(w.spares, f)
			return nil
		}
		_ = f.Close()
		_ = os.Remove(name)
		return nil
	case err != nil:
		// Never delete what might hold acknowledged events.
		_ = f.Close()
		return fmt.Errorf("%s: %w (move the file away only if its events may be lost)", name, err)
	}
	w.segs = append(w.segs, s)
	return nil
}

// count scans s (its records must raise the sequence above after),
// counting as outstanding the records at or above floor that done does not
// hold, and returns the last sequence found (after if none).
func (w *wal) count(s *segment, after, floor uint64, done map[uint64]struct{}) (uint64, error) {
	last := after
	err := scanSegment(s, after, func(seq uint64, _ []byte) error {
		if s.first == 0 {
			s.first = seq
		}
		s.last, last = seq, seq
		if _, ok := done[seq]; seq >= floor && !ok {
			s.outstanding++
			w.total++
		}
		return nil
	}, false)
	return last, err
}

// errUnusedSegment marks a segment file whose header is all zeros.
var errUnusedSegment = errors.New("unused journal segment")

func readSegmentHeader(f *os.File) (*segment, error) {
	var h [HeaderBytes]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errUnusedSegment // shorter than a header: never written
		}
		return nil, err
	}
	if h == [HeaderBytes]byte{} {
		return nil, errUnusedSegment
	}
	if string(h[:4]) != walMagic {
		return nil, fmt.Errorf("not a journal segment (header %x): %w", h[:4], errCorrupt)
	}
	if v := binary.LittleEndian.Uint32(h[4:8]); v != walVersion {
		return nil, fmt.Errorf("journal segment version %d, this build reads %d", v, walVersion)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &segment{id: binary.LittleEndian.Uint64(h[8:]), f: f, size: fi.Size(), end: HeaderBytes}, nil
}

// scanSegment walks s's valid records from its start, calling fn for each,
// and sets s.end after the last one. Records must raise the sequence above
// after. fn's payload is only valid during the call, and nil unless
// withPayload is set. It stops at fn's first error and returns it.
func scanSegment(s *segment, after uint64, fn func(seq uint64, payload []byte) error, withPayload bool) error {
	const chunk = 1 << 20
	r := io.NewSectionReader(s.f, 0, s.size)
	buf := make([]byte, 0, chunk)
	var hdr [RecordHeaderBytes]byte
	off := int64(HeaderBytes)
	for off+RecordHeaderBytes <= s.size {
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		seq := binary.LittleEndian.Uint64(hdr[8:])
		if n == 0 || off+RecordHeaderBytes+n > s.size || seq <= after {
			break
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := r.ReadAt(buf, off+RecordHeaderBytes); err != nil {
			return err
		}
		if RecordCRC(s.id, seq, buf) != sum {
			break
		}
		payload := buf
		if !withPayload {
			payload = nil
		}
		if err := fn(seq, payload); err != nil {
			return err
		}
		after = seq
		off += RecordHeaderBytes + n
	}
	s.end = off
	return nil
}

// appendGroup writes records for raws, numbered from seq, into the active
// segment (rotating first when they do not fit), and syncs them. It is
// called by the committer only. On error the segment's end is unchanged, so
// the next group overwrites whatever part of this one reached the file.
// It reports whether it rotated to a new segment.
func (w *wal) appendGroup(raws [][]byte, seq uint64, sync bool) (rotated bool, err error) {
	size := 0
	for _, raw := range raws {
		size += RecordHeaderBytes + len(raw)
	}
	active, rotated, err := w.activeFor(int64(size), sync)
	if err != nil {
		return false, err
	}
	buf := w.encode(active.id, raws, seq)
	if _, err := active.f.WriteAt(buf, active.end); err != nil {
		return rotated, err
	}
	if sync {
		if err := w.sync(active.f); err != nil {
			return rotated, err
		}
	}
	w.mu.Lock()
	if !sync && !slices.Contains(w.dirty, active) {
		w.dirty = append(w.dirty, active)
	}
	active.end += int64(size)
	if active.first == 0 {
		active.first = seq
	}
	active.last = seq + uint64(len(raws)) - 1
	active.outstanding += len(raws)
	w.total += len(raws)
	w.mu.Unlock()
	return rotated, nil
}

// activeFor returns the segment a group of size bytes goes to: the active
// one, or a new one (rotated) when there is none, the last sync failed or
// the group does not fit. syncNow tells rotate whether the group will be
// synced (else the new header is synced at once).
func (w *wal) activeFor(size int64, syncNow bool) (active *segment, rotated bool, err error) {
	w.mu.Lock()
	if n := len(w.segs); n > 0 {
		active = w.segs[n-1]
	}
	force := w.rotateNext
	w.mu.Unlock()
	if active != nil && !force && active.end+size <= active.size {
		return active, false, nil
	}
	if active, err = w.rotate(size, !syncNow); err != nil {
		return nil, false, err
	}
	if force {
		w.mu.Lock()
		w.rotateNext = false
		w.mu.Unlock()
	}
	return active, true, nil
}

// encode returns the records of raws, numbered from seq, for segment id,
// in the committer's reused buffer.
func (w *wal) encode(id uint64, raws [][]byte, seq uint64) []byte {
	buf := w.buf[:0]
	for i, raw := range raws {
		s := seq + uint64(i)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(raw)))
		buf = binary.LittleEndian.AppendUint32(buf, RecordCRC(id, s, raw))
		buf = binary.LittleEndian.AppendUint64(buf, s)
		buf = append(buf, raw...)
	}
	if cap(buf) <= 8<<20 {
		w.buf = buf // keep the buffer unless one huge group grew it
	}
	return buf
}

// syncDirty syncs the segments written since the last call (groups
// appended without a sync) and returns how many it synced. A segment
// retired meanwhile needs no sync: its events are complete and its file is
// being reused or was removed. After a failure the next group starts a new
// segment.
func (w *wal) syncDirty() (int, error) {
	w.closing.RLock()
	defer w.closing.RUnlock()
	w.mu.Lock()
	dirty := slices.DeleteFunc(w.dirty, func(s *segment) bool { return !slices.Contains(w.segs, s) })
	w.dirty = nil
	w.mu.Unlock()
	var errs []error
	var failed []*segment
	for _, s := range dirty {
		if err := w.sync(s.f); err != nil {
			errs = append(errs, fmt.Errorf("sync journal segment %d: %w", s.id, err))
			failed = append(failed, s)
		}
	}
	if len(failed) > 0 {
		w.mu.Lock()
		for _, s := range failed {
			if !slices.Contains(w.dirty, s) {
				w.dirty = append(w.dirty, s) // tried again at the next call
			}
		}
		w.rotateNext = true
		w.mu.Unlock()
	}
	return len(dirty) - len(failed), errors.Join(errs...)
}

// rotate makes a new active segment with room for need bytes of records:
// a spare file when one is ready, else a new zero-filled file. syncHeader
// syncs the new header at once, for groups that are not synced themselves:
// a reused spare still holds its previous life's header, and ids are read
// from headers.
func (w *wal) rotate(need int64, syncHeader bool) (*segment, error) {
	size := max(w.segBytes, HeaderBytes+need)
	w.mu.Lock()
	id := w.nextID
	w.nextID++
	var f *os.File
	if size == w.segBytes && len(w.spares) > 0 {
		f = w.spares[len(w.spares)-1]
		w.spares = w.spares[:len(w.spares)-1]
	}
	w.mu.Unlock()
	name := w.segmentPath(id)
	if f == nil {
		var err error
		if f, err = createZeroed(w.dir, name, size); err != nil {
			return nil, fmt.Errorf("new journal segment: %w", err)
		}
	} else if err := os.Rename(f.Name(), name); err != nil {
		// Keep the file usable under its old name; it is still ours.
		w.returnSpare(f)
		return nil, fmt.Errorf("reuse journal segment: %w", err)
	} else {
		// The file's name is cosmetic (the header says what it is), but
		// *os.File keeps its old name for messages; reopen under the new one.
		nf, err := os.OpenFile(name, os.O_RDWR, 0)
		// Closed by the retirer: closing waits for a background sync.
		w.mu.Lock()
		w.stale = append(w.stale, f)
		w.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("reuse journal segment: %w", err)
		}
		f = nf
	}
	var h [HeaderBytes]byte
	copy(h[:4], walMagic)
	binary.LittleEndian.PutUint32(h[4:8], walVersion)
	binary.LittleEndian.PutUint64(h[8:], id)
	// Synced together with the first group written after it.
	if _, err := f.WriteAt(h[:], 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("new journal segment: %w", err)
	}
	if syncHeader {
		if err := w.sync(f); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("new journal segment: %w", err)
		}
	}
	s := &segment{id: id, f: f, size: size, end: HeaderBytes}
	w.mu.Lock()
	w.segs = append(w.segs, s)
	w.mu.Unlock()
	return s, nil
}

// closeStale closes the handles rotate left behind.
func (w *wal) closeStale() {
	w.mu.Lock()
	stale := w.stale
	w.stale = nil
	w.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	w.closing.Lock()
	defer w.closing.Unlock()
	for _, f := range stale {
		_ = f.Close()
	}
}

func (w *wal) segmentPath(id uint64) string {
	return filepath.Join(w.dir, fmt.Sprintf("%016x.wal", id))
}

func (w *wal) returnSpare(f *os.File) {
	w.mu.Lock()
	w.spares = append(w.spares, f)
	w.mu.Unlock()
}

// createZeroed writes a file of size zero bytes under a temporary spare
// name, syncs it and its directory entry, then renames it to name. Zero
// filling allocates every block now, so later fdatasyncs commit no metadata.
func createZeroed(dir, name string, size int64) (*os.File, error) {
	tmp, err := os.CreateTemp(dir, "spare-*.tmp")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return nil, err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := tmp.WriteAt(zeros[:n], off); err != nil {
			return fail(err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	_ = tmp.Close()
	return os.OpenFile(name, os.O_RDWR, 0)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// prepareSpare makes one spare file ready when none is, so that rotation
// does not zero-fill a segment while acknowledgements wait.
func (w *wal) prepareSpare() error {
	w.mu.Lock()
	have := len(w.spares)
	w.mu.Unlock()
	if have > 0 {
		return nil
	}
	name := filepath.Join(w.dir, fmt.Sprintf("spare-%x.wal", time.Now().UnixNano()))
	nf, err := createZeroed(w.dir, name, w.segBytes)
	if err != nil {
		return err
	}
	w.returnSpare(nf)
	return nil
}

// complete marks seqs complete. It returns true when the oldest segment
// has become retirable.
func (w *wal) complete(seqs []uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, seq := range seqs {
		i, found := slices.BinarySearchFunc(w.segs, seq, func(s *segment, seq uint64) int {
			switch {
			case s.first != 0 && s.last < seq:
				return -1
			case s.first == 0 || s.first > seq:
				return 1
			}
			return 0
		})
		if found && w.segs[i].outstanding > 0 {
			w.segs[i].outstanding--
			w.total--
		}
	}
	return len(w.segs) > 1 && w.segs[0].outstanding == 0
}

// retirable returns the segments, oldest first, whose records are all
// complete, stopping at the first that is not and never including the
// active segment, and the floor that retiring them sets.
func (w *wal) retirable() (segs []*segment, floor uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.readers > 0 {
		return nil, 0
	}
	for i := 0; i < len(w.segs)-1 && w.segs[i].outstanding == 0; i++ {
		segs = append(segs, w.segs[i])
		floor = max(floor, w.segs[i].last+1)
	}
	return segs, floor
}

// retire drops the segments (which retirable returned) and keeps their
// files as spares, up to MaxSpares; the rest are deleted.
func (w *wal) retire(segs []*segment) {
	w.mu.Lock()
	w.segs = slices.DeleteFunc(w.segs, func(s *segment) bool { return slices.Contains(segs, s) })
	var drop []*os.File
	for _, s := range segs {
		if s.size == w.segBytes && len(w.spares) < MaxSpares {
			w.spares = append(w.spares, s.f)
		} else {
			drop = append(drop, s.f)
		}
	}
	w.mu.Unlock()
	w.closing.Lock()
	defer w.closing.Unlock()
	for _, f := range drop {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
}

// beginRead returns the segments and their durable ends, for Replay, and
// holds off their retirement until endRead.
func (w *wal) beginRead() []segment {
	w.mu.Lock()
	w.readers++
	w.mu.Unlock()
	return w.snapshot()
}

func (w *wal) endRead() {
	w.mu.Lock()
	w.readers--
	w.mu.Unlock()
}

// snapshot returns the segments and their durable ends.
func (w *wal) snapshot() []segment {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]segment, len(w.segs))
	for i, s := range w.segs {
		out[i] = *s
		out[i].size = s.end // read no further than what is durable
	}
	return out
}

// outstanding returns the number of records not yet completed.
func (w *wal) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// usage returns the bytes the journal's files occupy.
func (w *wal) usage() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, s := range w.segs {
		n += s.size
	}
	return n + int64(len(w.spares))*w.segBytes
}

func (w *wal) closeFiles() error {
	w.closing.Lock()
	defer w.closing.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, s := range w.segs {
		errs = append(errs, s.f.Close())
	}
	for _, f := range w.spares {
		errs = append(errs, f.Close())
	}
	for _, f := range w.stale {
		_ = f.Close() // renamed and reopened: nothing of ours to report
	}
	w.segs, w.spares, w.stale = nil, nil, nil
	return errors.Join(errs...)
}
