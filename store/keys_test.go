package store

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestGoldenLayout pins the exact bytes of every key and value kind written
// by the public API. If it fails, the on-disk format changed: bump
// FormatVersion, update doc.go, and only then update the expectations.
func TestGoldenLayout(t *testing.T) {
	d := openAt(t, "")
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
		"00":                             "00000001",
		"010000000000000002":             "7b2262223a327d",
		"02":                             "0000000000000003",
		"03056b61666b610000000000000001": "18eaf961d28a80000003696431" + "7b7d",
		"04056b61666b61":                 "0000000000000003",
		"05056b61666b610000000000000002": "18eaf961d28a8000" + "18eaf961d28a8000" + "0003696432" + "0003626164" + "5b5d",
		"0600076e67696e783a31":           "18eaf961d28a8000" + "4d",
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
}

func TestOpenRefusesOtherFormat(t *testing.T) {
	tests := []struct {
		name  string
		key   []byte
		value []byte
		want  string
	}{
		{"newer version", formatKey(), u32(2), "format version 2, this build reads 1"},
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
