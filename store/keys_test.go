package store

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/store/journal"
)

// TestGoldenLayout pins the exact bytes of every key and value kind written
// by the public API. If it fails, the on-disk format changed: bump
// FormatVersion, update doc.go, and only then update the expectations.
func TestGoldenLayout(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // 0x18eaf961d28a8000 ns
	d.now = func() time.Time { return t0 }
	ctx := t.Context()
	if _, err := d.Append(ctx, [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Complete([]uint64{1}, []scorer.OutboxPut{{Sink: "kafka", AlertID: "id1", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Complete(nil, []scorer.OutboxPut{{Sink: "kafka", AlertID: "id2", Payload: []byte(`[]`)}}); err != nil {
		t.Fatal(err)
	}
	e, err := d.Pending("kafka", 1, 1)
	if err != nil || len(e) != 1 {
		t.Fatalf("Pending = %v, %v", e, err)
	}
	if err := d.DeadLetter(e[0], "bad"); err != nil {
		t.Fatal(err)
	}
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "nginx:1", Bucket: t0, Counts: []byte{0xc0}, Meta: []byte{0x4d}}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"00":                                 "00000003",
		"0900000000000000010000000000000001": "01", // done marker: max seq 1, id 1: seqs {1}
		"03056b61666b610000000000000001":     "18eaf961d28a80000003696431" + "7b7d",
		"04056b61666b61":                     "0000000000000003",
		"05056b61666b610000000000000002":     "18eaf961d28a8000" + "18eaf961d28a8000" + "0003696432" + "0003626164" + "5b5d",
		"0600076e67696e783a31":               "18eaf961d28a8000" + "4d",
		"0700076e67696e783a3118eaf961d28a8000" + "0000000000000001": "c0",
		"08": "0000000000000002",
	}
	got := map[string]string{}
	err = d.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			got[hex.EncodeToString(it.Item().Key())] = hex.EncodeToString(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("value of key %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s = %s", k, got[k])
		}
	}
	// The journal segment: header, then the two records.
	seg, err := os.ReadFile(filepath.Join(dir, walDirName, "0000000000000001.wal"))
	if err != nil {
		t.Fatal(err)
	}
	wantSeg := "46534a4c" + "01000000" + "0100000000000000" + // "FSJL", version 1, segment 1
		"07000000" + "%s" + "0100000000000000" + "7b2261223a317d" + // len 7, crc, seq 1, {"a":1}
		"07000000" + "%s" + "0200000000000000" + "7b2262223a327d" //  len 7, crc, seq 2, {"b":2}
	crc := func(seq uint64, p string) string {
		return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, journal.RecordCRC(1, seq, []byte(p))))
	}
	wantSeg = fmt.Sprintf(wantSeg, crc(1, `{"a":1}`), crc(2, `{"b":2}`))
	if got := hex.EncodeToString(seg[:len(wantSeg)/2]); got != wantSeg {
		t.Errorf("journal segment starts %s, want %s", got, wantSeg)
	}
	if c := crc(1, `{"a":1}`); c != "db0b9721" {
		t.Errorf("record CRC-32C = %s, want db0b9721 (segment id, seq, payload)", c)
	}
}

func TestOpenRefusesOtherFormat(t *testing.T) {
	tests := []struct {
		name  string
		key   []byte
		value []byte
		want  string
	}{
		{"newer version", formatKey(), u32(4), "format version 4, this build reads 3"},
		{"foreign data", []byte("hello"), []byte("x"), "no format record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := badger.DefaultOptions(dir).WithLogger(nil)
			bdb, err := badger.Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(tt.key, tt.value) }); err != nil {
				t.Fatal(err)
			}
			if err := bdb.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = Open(testConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// TestOpenUpgradesDrainedFormat1 opens stores of the previous layout: one
// whose Badger journal is empty is upgraded in place; one with pending
// entries is refused, with what to do.
func TestOpenUpgradesDrainedFormat1(t *testing.T) {
	for _, pending := range []bool{false, true} {
		dir := t.TempDir()
		bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = bdb.Update(func(txn *badger.Txn) error {
			if pending {
				if err := txn.Set(journalKey(7), []byte(`{}`)); err != nil {
					return err
				}
			}
			if err := txn.Set(journalSeqKey(), encodeU64(9)); err != nil {
				return err
			}
			return txn.Set(formatKey(), u32(1))
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := bdb.Close(); err != nil {
			t.Fatal(err)
		}
		d, err := Open(testConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
		if pending {
			if err == nil || !contains(err.Error(), "start the previous release once to drain them") {
				t.Errorf("Open(format 1 with pending entries) = %v, want a refusal saying what to do", err)
			}
			if d != nil {
				d.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("Open(drained format 1) = %v", err)
		}
		seqs, err := d.Append(t.Context(), [][]byte{[]byte("x")})
		if err != nil || seqs[0] < 9 {
			t.Errorf("Append after upgrade = %v, %v, want seq >= 9 (format 1's mark)", seqs, err)
		}
		d.Close()
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
