package store

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	kflate "github.com/klauspost/compress/flate"
)

// Outbox payloads are compressed because they were the second largest part
// of the service's disk writes after the journal: one event in five on a
// busy node is a Falco alert, and its alert carries the whole Falco event
// plus the scorer's explanation (~1.5-2 KB of JSON) into Badger's value log,
// which was ~0.5 × the bytes received at a steady 1,000 events/s. Alerts are
// alike (the same keys, rules, images and field names), so deflate with a
// preset dictionary of a typical alert shrinks them 3-6 ×.
//
// The codec is recorded in the value (the high bit of the id length, then a
// codec byte), so a store holds compressed and uncompressed entries side by
// side: entries written by format 2 are read as they are, and a payload that
// would not shrink is stored raw. A codec, once written, is never changed:
// a new dictionary gets a new codec byte.
const (
	// outboxPacked, in an outbox value's id length, says that a codec byte
	// and a packed payload follow the id. Ids are at most maxIDLen bytes,
	// so the bit is never set in a format-2 value.
	outboxPacked = 0x8000
	// codecDeflateDict1 is RFC 1951 deflate with outboxDict1 as the preset
	// dictionary; the stream is preceded by the payload's length (uvarint).
	// Any deflate encoder may write it: it is read with compress/flate.
	codecDeflateDict1 byte = 1
	// outboxPackMin is the smallest payload worth compressing; below it the
	// codec byte and length cost more than deflate saves.
	outboxPackMin = 128
	// maxOutboxPayload bounds what a packed value may claim to expand to,
	// so that a corrupt length cannot make a reader allocate without limit.
	maxOutboxPayload = 64 << 20
	// deflateLevel is klauspost/compress's fastest level, which (unlike
	// compress/flate's BestSpeed) uses the preset dictionary and resets
	// without clearing its tables: it compressed the golden alerts 4.1 ×
	// for about half the CPU of compress/flate's level 2 (4.6 ×), whose
	// reset clears 640 KB of hash chains per alert.
	deflateLevel = 1
)

// outboxDict1 is the preset dictionary of codecDeflateDict1: the compact JSON
// of typical alerts (schema falco-scorer.alert.v2) with Falco's usual output
// fields. It is part of the on-disk format: never edit it.
const outboxDict1 = `{"schema":"falco-scorer.alert.v2","id":"","kind":"anomaly","time":"2026-01-01T00:00:00Z","priority":"Warning",` +
	`"rule":"falco-scorer observation","reason":"window score above the image's threshold","subject":{"image":"docker.io/library/nginx:1.0.0",` +
	`"image_source":"digest","container_id":"","container_name":"","namespace":"default","pod":"","process":"","pid":1000,"parent":"",` +
	`"hostname":"node-1"},"score":{"value":20.5,"threshold":15,"ratio":1.3666666666666667,"band":"low","verdict":"anomalous","falco_priority":"Debug"},` +
	`"baseline":{"state":"learning","events":120000,"distinct_transitions":812,"since":"2026-01-01T00:00:00Z","inherited_from":""},` +
	`"anomaly":{"id":"","kind":"end","time":"","score":0,"threshold":0,"ratio":0,"process":"","pid":0},` +
	`"explanation":{"window":["openat","read","execve","connect"],"transitions":[{"history":["openat","read"],"symbol":"execve",` +
	`"probability":0.00012,"surprise":9.03,"history_seen":40211},{"history":["read","execve"],"symbol":"connect","probability":0.0021,` +
	`"surprise":6.17,"history_seen":17}]},` +
	`"falco":{"hostname":"node-1","output":"00:00:00.000000000: Notice A shell was spawned in a container with an attached terminal ` +
	`(user=root user_loginuid=-1 process=bash proc_exepath=/bin/bash parent=runc command=bash -i terminal=34816 exe_flags=EXE_WRITABLE ` +
	`container_id= container_name= container_image_repository= container_image_tag= k8s_pod_name= k8s_ns_name=)",` +
	`"priority":"Notice","rule":"Terminal shell in container","source":"syscall","tags":["T1059","container","maturity_stable",` +
	`"mitre_execution","shell"],"time":"2026-01-01T00:00:00.000000000Z","output_fields":{"container.id":"","container.image.digest":"sha256:",` +
	`"container.image.repository":"","container.image.tag":"","container.name":"","evt.arg.flags":"","evt.res":"SUCCESS","evt.time":0,` +
	`"evt.type":"openat","fd.name":"/etc/shadow","k8s.ns.name":"default","k8s.pod.name":"","proc.cmdline":"bash -i","proc.exepath":"/bin/bash",` +
	`"proc.name":"bash","proc.pid":1000,"proc.pname":"runc","proc.ppid":1,"user.name":"root","user.uid":0}}}`

// deflaters pools deflate writers primed with outboxDict1: a writer costs
// hundreds of KB to create, a few µs to reset and use. The pool is a cache,
// not state: any writer in it is equivalent to a new one.
var deflaters = sync.Pool{New: func() any {
	p := &deflater{}
	w, err := kflate.NewWriterDict(&p.out, deflateLevel, []byte(outboxDict1))
	if err != nil {
		return nil // cannot happen for a valid level; the caller stores raw
	}
	p.w = w
	return p
}}

// deflater is a pooled writer and the slice it appends to.
type deflater struct {
	w   *kflate.Writer
	out appendWriter
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// inflaters pools readers of codecDeflateDict1 (~40 KB each), used when an
// outbox entry is read from disk rather than from the cache of recent ones.
var inflaters = sync.Pool{New: func() any {
	return flate.NewReaderDict(bytes.NewReader(nil), []byte(outboxDict1))
}}

// appendPacked appends payload compressed with codecDeflateDict1 (its length,
// then the deflate stream) to dst. It reports false when the result would
// not be smaller than the payload itself, or on a compressor error: the
// caller then stores the payload raw.
func appendPacked(dst, payload []byte) ([]byte, bool) {
	if benchRawOutbox() {
		return dst, false
	}
	p, _ := deflaters.Get().(*deflater)
	if p == nil {
		return dst, false
	}
	defer deflaters.Put(p)
	start := len(dst)
	p.out.b = binary.AppendUvarint(dst, uint64(len(payload)))
	p.w.Reset(&p.out)
	_, err := p.w.Write(payload)
	if err == nil {
		err = p.w.Close()
	}
	out := p.out.b
	p.out.b = nil // the pooled writer must not keep the value alive
	if err != nil || len(out)-start+1 >= len(payload) {
		return dst[:start], false
	}
	return out, true
}

// unpack decodes a packed payload of codec c.
func unpack(c byte, v []byte) ([]byte, error) {
	if c != codecDeflateDict1 {
		return nil, fmt.Errorf("outbox value: unknown codec %d: %w", c, errCorrupt)
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || n > maxOutboxPayload {
		return nil, fmt.Errorf("outbox value: payload length: %w", errCorrupt)
	}
	r, _ := inflaters.Get().(io.ReadCloser)
	rs, ok := r.(flate.Resetter)
	if !ok {
		return nil, fmt.Errorf("outbox value: no deflate reader")
	}
	defer inflaters.Put(r)
	if err := rs.Reset(bytes.NewReader(v[k:]), []byte(outboxDict1)); err != nil {
		return nil, fmt.Errorf("outbox value: %w", err)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("outbox value: payload of %d bytes: %v: %w", n, err, errCorrupt)
	}
	// The stream must end exactly there: a longer one is not what was
	// written.
	var extra [1]byte
	if m, err := r.Read(extra[:]); m != 0 || err != io.EOF {
		return nil, fmt.Errorf("outbox value: payload longer than its length %d: %w", n, errCorrupt)
	}
	return out, nil
}
