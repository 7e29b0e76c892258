package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// goldenAlerts returns the sinks' golden alert payloads in the compact form
// the pipeline writes to the outbox.
func goldenAlerts(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "sinks", "testdata", "alert_*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden alerts: %v, %d files", err, len(files))
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, c.Bytes())
	}
	return out
}

// rawOutboxValues returns the stored outbox values of sink by seq.
func rawOutboxValues(t *testing.T, d *DB, sink string) map[uint64][]byte {
	t.Helper()
	got := map[uint64][]byte{}
	err := d.bdb.View(func(txn *badger.Txn) error {
		prefix := sinkPrefix(prefixOutbox, sink)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			_, seq, err := parseSinkKey(it.Item().Key())
			if err != nil {
				return err
			}
			if got[seq], err = it.Item().ValueCopy(nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestOutboxPayloadsPackedOnDisk checks that alert payloads are stored
// compressed (the outbox was the largest part of Badger's writes), that a
// payload deflate cannot shrink and a tiny one are stored raw, and that all
// of them read back exactly, from disk after a reopen.
func TestOutboxPayloadsPackedOnDisk(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	alerts := goldenAlerts(t)
	noise := make([]byte, 600)
	for i := range noise {
		noise[i] = byte(rand.Uint32())
	}
	payloads := append(append([][]byte{}, alerts...), noise, []byte(`{"id":"tiny"}`))
	var ps []scorer.OutboxPut
	for i, p := range payloads {
		ps = append(ps, scorer.OutboxPut{Sink: "kafka", AlertID: "id" + string(rune('a'+i)), Payload: p})
	}
	if err := d.Complete(nil, ps); err != nil {
		t.Fatal(err)
	}
	raw := rawOutboxValues(t, d, "kafka")
	var in, stored int
	for i, p := range payloads {
		v := raw[uint64(i+1)]
		packed := binary.BigEndian.Uint16(v[8:10])&outboxPacked != 0
		switch {
		case i < len(alerts):
			in, stored = in+len(p), stored+len(v)
			if !packed || len(v) >= len(p)/2 {
				t.Errorf("alert %d: stored %d bytes (packed %v) for a %d-byte payload, want packed and under half", i, len(v), packed, len(p))
			}
		case packed:
			t.Errorf("payload %d (%d bytes, incompressible or tiny) stored packed", i, len(p))
		}
	}
	t.Logf("golden alerts: %d bytes of payload stored in %d (%.1f ×)", in, stored, float64(in)/float64(stored))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openAt(t, dir)
	got, err := d.Pending("kafka", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(payloads) {
		t.Fatalf("Pending after reopen = %d entries, want %d", len(got), len(payloads))
	}
	for i, e := range got {
		if !bytes.Equal(e.Payload, payloads[i]) || e.AlertID != ps[i].AlertID {
			t.Errorf("Pending entry %d = id %q, payload %.60q..., want id %q, payload %.60q...", i, e.AlertID, e.Payload, ps[i].AlertID, payloads[i])
		}
	}
	// Through the dead-letter set (stored raw) and back (packed again).
	for _, e := range got {
		if err := d.DeadLetter(e, "refused"); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.ReplayDeadLetters("kafka"); err != nil || n != len(payloads) {
		t.Fatalf("ReplayDeadLetters = %d, %v, want %d", n, err, len(payloads))
	}
	again, err := d.pendingFromDisk("kafka", 0, 100)
	if err != nil || len(again) != len(payloads) {
		t.Fatalf("pendingFromDisk after replay = %d entries, %v", len(again), err)
	}
	for i, e := range again {
		if !bytes.Equal(e.Payload, payloads[i]) {
			t.Errorf("replayed entry %d: payload %.60q..., want %.60q...", i, e.Payload, payloads[i])
		}
	}
}

// TestOutboxReadsFormat2Values opens a format-2 store holding an
// uncompressed outbox entry, as the previous release wrote it: the store is
// upgraded and the entry reads back unchanged.
func TestOutboxReadsFormat2Values(t *testing.T) {
	dir := t.TempDir()
	payload := goldenAlerts(t)[0]
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	enq := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	v := binary.BigEndian.AppendUint16(u64(nil, timeNanos(enq)), 3) // format 2: enqueued | u16 len(id) | id | payload
	v = append(append(v, "old"...), payload...)
	err = bdb.Update(func(txn *badger.Txn) error {
		if err := txn.Set(formatKey(), u32(2)); err != nil {
			return err
		}
		if err := txn.Set(outboxSeqKey("kafka"), encodeU64(2)); err != nil {
			return err
		}
		return txn.Set(outboxKey("kafka", 1), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(testConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open(format 2) = %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	got, err := d.Pending("kafka", 0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Pending = %v, %v, want the format-2 entry", got, err)
	}
	if e := got[0]; e.AlertID != "old" || !e.Enqueued.Equal(enq) || !bytes.Equal(e.Payload, payload) {
		t.Errorf("Pending = id %q enqueued %v payload %.60q..., want id old, enqueued %v, the stored payload", e.AlertID, e.Enqueued, e.Payload, enq)
	}
	err = d.bdb.View(func(txn *badger.Txn) error {
		version, _, err := d.storedFormat(txn, "")
		if err == nil && version != FormatVersion {
			t.Errorf("format record after Open = %d, want %d", version, FormatVersion)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDecodeOutboxRefusesCorruptPacked checks that a packed value whose
// framing is damaged is reported as corrupt. (Like the raw payloads before
// it, the deflate stream itself carries no checksum.)
func TestDecodeOutboxRefusesCorruptPacked(t *testing.T) {
	payload := goldenAlerts(t)[0]
	good := encodeOutbox(time.Unix(1, 0), "id", payload)
	bodyAt := 10 + len("id") // codec byte
	tests := []struct {
		name string
		v    []byte
	}{
		{"truncated stream", good[:len(good)-5]},
		{"no codec byte", good[:bodyAt]},
		{"unknown codec", withByte(good, bodyAt, 9)},
		{"length larger than the stream", withLength(good, bodyAt+1, uint64(len(payload)+1))},
		{"length smaller than the stream", withLength(good, bodyAt+1, uint64(len(payload)-1))},
		{"length beyond the limit", withLength(good, bodyAt+1, maxOutboxPayload+1)},
	}
	if _, _, p, err := decodeOutbox(good); err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("decodeOutbox(good) = %v, payload equal %v", err, bytes.Equal(p, payload))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, p, err := decodeOutbox(tt.v)
			if !errors.Is(err, errCorrupt) {
				t.Errorf("decodeOutbox = payload of %d bytes, %v, want errCorrupt", len(p), err)
			}
		})
	}
}

func withByte(v []byte, i int, b byte) []byte {
	out := bytes.Clone(v)
	out[i] = b
	return out
}

// withLength replaces the uvarint payload length at i.
func withLength(v []byte, i int, n uint64) []byte {
	_, k := binary.Uvarint(v[i:])
	out := append(bytes.Clone(v[:i]), binary.AppendUvarint(nil, n)...)
	return append(out, v[i+k:]...)
}

// FuzzOutboxValue checks that every value encodeOutbox writes decodes to
// what was written, and that decodeOutbox never panics on arbitrary bytes.
func FuzzOutboxValue(f *testing.F) {
	for _, p := range goldenAlerts(f) {
		f.Add("id", p)
	}
	f.Add("", []byte{})
	f.Add("x", bytes.Repeat([]byte("a"), 300))
	f.Fuzz(func(t *testing.T, id string, payload []byte) {
		if len(id) > maxIDLen {
			id = id[:maxIDLen]
		}
		enq := time.Unix(0, 1_700_000_000_000_000_000)
		v := encodeOutbox(enq, id, payload)
		e, gotID, p, err := decodeOutbox(v)
		if err != nil || gotID != id || !e.Equal(enq) || !bytes.Equal(p, payload) {
			t.Fatalf("decodeOutbox(encodeOutbox(%q, %d bytes)) = %q, %d bytes, %v", id, len(payload), gotID, len(p), err)
		}
		_, _, _, _ = decodeOutbox(payload) // arbitrary bytes: must not panic
	})
}

// BenchmarkEncodeOutbox is the cost Complete pays per alert for the
// compression (the golden alerts, compact), and what it saves on disk.
func BenchmarkEncodeOutbox(b *testing.B) {
	alerts := goldenAlerts(b)
	enq := time.Unix(0, 1_700_000_000_000_000_000)
	var in, out int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := alerts[i%len(alerts)]
		v := encodeOutbox(enq, "a48e2d7b99abb2cac4a76ad7b54f802d", p)
		in, out = in+len(p), out+len(v)
		i++
	}
	b.ReportMetric(float64(in)/float64(out), "x-smaller")
}

// BenchmarkDecodeOutbox is the cost of reading a packed alert from disk
// (Pending after a restart or behind a backlog).
func BenchmarkDecodeOutbox(b *testing.B) {
	alerts := goldenAlerts(b)
	enq := time.Unix(0, 1_700_000_000_000_000_000)
	vs := make([][]byte, len(alerts))
	for i, p := range alerts {
		vs[i] = encodeOutbox(enq, "a48e2d7b99abb2cac4a76ad7b54f802d", p)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, _, err := decodeOutbox(vs[i%len(vs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
