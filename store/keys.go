package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// FormatVersion is the version of the key and value layout documented in
// doc.go. Open refuses a directory written with another version.
// Version 2 moved the journal out of Badger (prefixes 0x01 and 0x02 are
// retired) into segment files, with done markers and a floor here.
// Version 3 may store an outbox payload compressed (outboxcodec.go); it
// reads format-2 values unchanged, so a format-2 store is upgraded in place.
const FormatVersion uint32 = 3

// Key prefixes (first byte of every key). Never reuse a retired value.
const (
	prefixFormat     byte = 0x00 // format version record
	prefixJournal    byte = 0x01 // format 1 only: journal entry
	prefixJournalSeq byte = 0x02 // format 1 only: journal sequence high-water mark
	prefixOutbox     byte = 0x03 // outbox entry
	prefixOutboxSeq  byte = 0x04 // outbox sequence high-water mark, per sink
	prefixDead       byte = 0x05 // dead letter
	prefixImage      byte = 0x06 // image meta
	prefixBucket     byte = 0x07 // one flushed counts blob of one image bucket
	prefixFlushSeq   byte = 0x08 // baseline flush sequence high-water mark
	prefixDone       byte = 0x09 // journal done marker
	prefixFloor      byte = 0x0a // journal floor
)

// Limits enforced on names and fields so that keys stay well below Badger's
// key size limit and length prefixes fit.
const (
	maxSinkLen   = 255
	maxImageLen  = 4096
	maxIDLen     = 1024
	maxReasonLen = 1024
)

var errCorrupt = errors.New("corrupt record")

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// timeNanos encodes t for keys and values. Times before 1970 do not occur in
// this service and are refused where they come from outside (deltas, import).
func timeNanos(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func nanosTime(v uint64) time.Time { return time.Unix(0, int64(v)).UTC() }

func checkTime(field string, t time.Time) error {
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<62)) {
		return fmt.Errorf("%s: time %s out of range", field, t.Format(time.RFC3339Nano))
	}
	return nil
}

func checkSink(sink string) error {
	if sink == "" || len(sink) > maxSinkLen {
		return fmt.Errorf("sink name length %d not in [1, %d]", len(sink), maxSinkLen)
	}
	return nil
}

func checkImage(image string) error {
	if image == "" || len(image) > maxImageLen {
		return fmt.Errorf("image name length %d not in [1, %d]", len(image), maxImageLen)
	}
	return nil
}

func formatKey() []byte { return []byte{prefixFormat} }

func journalKey(seq uint64) []byte { return u64([]byte{prefixJournal}, seq) }

func journalSeqKey() []byte { return []byte{prefixJournalSeq} }

func flushSeqKey() []byte { return []byte{prefixFlushSeq} }

// doneKey orders markers by the highest sequence they complete, so that
// the markers below a floor form one key range.
func doneKey(maxSeq, id uint64) []byte { return u64(u64([]byte{prefixDone}, maxSeq), id) }

func floorKey() []byte { return []byte{prefixFloor} }

// Done marker value: the completed sequences, ascending, as uvarint deltas.
func encodeDone(seqs []uint64) []byte {
	b := make([]byte, 0, 2*len(seqs)+8)
	prev := uint64(0)
	for _, s := range seqs {
		b = binary.AppendUvarint(b, s-prev)
		prev = s
	}
	return b
}

func decodeDone(v []byte, fn func(seq uint64)) error {
	prev := uint64(0)
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 {
			return fmt.Errorf("done marker: %w", errCorrupt)
		}
		prev += d
		fn(prev)
		v = v[n:]
	}
	return nil
}

// sinkPrefix is prefix | len(sink) | sink.
func sinkPrefix(prefix byte, sink string) []byte {
	b := make([]byte, 0, 2+len(sink)+8)
	b = append(b, prefix, byte(len(sink)))
	return append(b, sink...)
}

func outboxKey(sink string, seq uint64) []byte { return u64(sinkPrefix(prefixOutbox, sink), seq) }

func deadKey(sink string, seq uint64) []byte { return u64(sinkPrefix(prefixDead, sink), seq) }

func outboxSeqKey(sink string) []byte { return sinkPrefix(prefixOutboxSeq, sink) }

// parseSinkKey splits prefix | len | sink | seq.
func parseSinkKey(k []byte) (sink string, seq uint64, err error) {
	if len(k) < 2 || len(k) != 2+int(k[1])+8 {
		return "", 0, fmt.Errorf("sink key %x: %w", k, errCorrupt)
	}
	n := int(k[1])
	return string(k[2 : 2+n]), binary.BigEndian.Uint64(k[2+n:]), nil
}

// imagePrefix is prefix | u16 len(image) | image.
func imagePrefix(prefix byte, image string) []byte {
	b := make([]byte, 0, 3+len(image)+16)
	b = append(b, prefix)
	b = binary.BigEndian.AppendUint16(b, uint16(len(image)))
	return append(b, image...)
}

func imageKey(image string) []byte { return imagePrefix(prefixImage, image) }

func bucketKey(image string, bucket time.Time, flush uint64) []byte {
	return u64(u64(imagePrefix(prefixBucket, image), timeNanos(bucket)), flush)
}

func parseImageKey(k []byte) (string, error) {
	if len(k) < 3 || len(k) != 3+int(binary.BigEndian.Uint16(k[1:3])) {
		return "", fmt.Errorf("image key %x: %w", k, errCorrupt)
	}
	return string(k[3:]), nil
}

func parseBucketKey(k []byte) (image string, bucket time.Time, flush uint64, err error) {
	if len(k) < 3 {
		return "", time.Time{}, 0, fmt.Errorf("bucket key %x: %w", k, errCorrupt)
	}
	n := int(binary.BigEndian.Uint16(k[1:3]))
	if len(k) != 3+n+16 {
		return "", time.Time{}, 0, fmt.Errorf("bucket key %x: %w", k, errCorrupt)
	}
	return string(k[3 : 3+n]), nanosTime(binary.BigEndian.Uint64(k[3+n:])), binary.BigEndian.Uint64(k[3+n+8:]), nil
}

func encodeU64(v uint64) []byte { return u64(nil, v) }

func decodeU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("counter of %d bytes: %w", len(b), errCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

// Outbox value: enqueued u64 | u16 len(id) | id | payload, or, when the
// payload is packed (outboxcodec.go): enqueued u64 | u16 len(id)|0x8000 |
// id | codec u8 | packed payload.
func encodeOutbox(enqueued time.Time, id string, payload []byte) []byte {
	b := u64(make([]byte, 0, 11+len(id)+len(payload)), timeNanos(enqueued))
	if len(payload) >= outboxPackMin {
		h := binary.BigEndian.AppendUint16(b, uint16(len(id))|outboxPacked)
		h = append(append(h, id...), codecDeflateDict1)
		if packed, ok := appendPacked(h, payload); ok {
			return packed
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, payload...)
}

func decodeOutbox(v []byte) (enqueued time.Time, id string, payload []byte, err error) {
	if len(v) < 10 {
		return time.Time{}, "", nil, fmt.Errorf("outbox value: %w", errCorrupt)
	}
	l := binary.BigEndian.Uint16(v[8:10])
	n := int(l &^ outboxPacked)
	if len(v) < 10+n {
		return time.Time{}, "", nil, fmt.Errorf("outbox value: %w", errCorrupt)
	}
	enqueued, id, payload = nanosTime(binary.BigEndian.Uint64(v)), string(v[10:10+n]), v[10+n:]
	if l&outboxPacked != 0 {
		if len(payload) < 1 {
			return time.Time{}, "", nil, fmt.Errorf("outbox value: no codec: %w", errCorrupt)
		}
		if payload, err = unpack(payload[0], payload[1:]); err != nil {
			return time.Time{}, "", nil, err
		}
	}
	return enqueued, id, payload, nil
}

// Dead-letter value: enqueued u64 | dead u64 | u16 len(id) | id |
// u16 len(reason) | reason | payload.
func encodeDead(enqueued, dead time.Time, id, reason string, payload []byte) []byte {
	b := make([]byte, 0, 20+len(id)+len(reason)+len(payload))
	b = u64(b, timeNanos(enqueued))
	b = u64(b, timeNanos(dead))
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	b = append(b, reason...)
	return append(b, payload...)
}

func decodeDead(v []byte) (enqueued, dead time.Time, id, reason string, payload []byte, err error) {
	bad := fmt.Errorf("dead letter value: %w", errCorrupt)
	if len(v) < 18 {
		return time.Time{}, time.Time{}, "", "", nil, bad
	}
	enqueued, dead = nanosTime(binary.BigEndian.Uint64(v)), nanosTime(binary.BigEndian.Uint64(v[8:]))
	v = v[16:]
	n := int(binary.BigEndian.Uint16(v))
	if len(v) < 2+n+2 {
		return time.Time{}, time.Time{}, "", "", nil, bad
	}
	id, v = string(v[2:2+n]), v[2+n:]
	n = int(binary.BigEndian.Uint16(v))
	if len(v) < 2+n {
		return time.Time{}, time.Time{}, "", "", nil, bad
	}
	return enqueued, dead, id, string(v[2 : 2+n]), v[2+n:], nil
}

// Image value: last seen u64 | meta.
func encodeImage(lastSeen time.Time, meta []byte) []byte {
	return append(u64(make([]byte, 0, 8+len(meta)), timeNanos(lastSeen)), meta...)
}

func decodeImage(v []byte) (lastSeen time.Time, meta []byte, err error) {
	if len(v) < 8 {
		return time.Time{}, nil, fmt.Errorf("image value: %w", errCorrupt)
	}
	return nanosTime(binary.BigEndian.Uint64(v)), v[8:], nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
