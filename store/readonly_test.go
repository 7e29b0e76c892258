package store

import (
	"errors"
	"github.com/dgraph-io/badger/v4"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// seedAt writes one image's baseline into a store in dir and closes it.
func seedAt(t *testing.T, dir, image string) {
	t.Helper()
	d, err := Open(testConfig(dir), zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: image, Bucket: hour(1), Counts: []byte("c"), Meta: []byte("m")}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	seedAt(t, dir, "redis:7")

	ro, err := OpenReadOnly(dir, zerolog.Nop())
	if err != nil {
		t.Fatalf("OpenReadOnly = %v", err)
	}
	// Readers share the directory.
	ro2, err := OpenReadOnly(dir, zerolog.Nop())
	if err != nil {
		t.Fatalf("second OpenReadOnly = %v", err)
	}
	if infos, err := ro.Images(); err != nil || len(infos) != 1 || infos[0].Image != "redis:7" {
		t.Errorf("Images() = %v, %v; want redis:7", infos, err)
	}
	if _, buckets, err := ro2.Image("redis:7"); err != nil || len(buckets) != 1 {
		t.Errorf("Image(redis:7) = %d buckets, %v; want 1", len(buckets), err)
	}
	if _, err := ro.Export(io.Discard); err != nil {
		t.Errorf("Export = %v", err)
	}
	if err := ro.PutDeltas([]scorer.BaselineDelta{{Image: "nginx", Bucket: hour(1), Counts: []byte("n")}}); err == nil {
		t.Errorf("PutDeltas on a read-only store = nil, want an error")
	}
	// The service cannot start while a reader holds the directory.
	if d, err := Open(testConfig(dir), zerolog.Nop(), nil); err == nil {
		d.Close()
		t.Errorf("Open beside a reader succeeded, want the directory lock to refuse it")
	}
	for _, d := range []*DB{ro, ro2, ro} { // twice is fine
		if err := d.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if _, err := ro.Images(); !errors.Is(err, ErrClosed) {
		t.Errorf("Images after Close = %v, want ErrClosed", err)
	}
}

// TestOpenReadOnlyRefusals: each case that cannot be read without writing
// is refused with an error saying what to do, and writes nothing.
func TestOpenReadOnlyRefusals(t *testing.T) {
	t.Run("in use by the service", func(t *testing.T) {
		dir := t.TempDir()
		openAt(t, dir)
		_, err := OpenReadOnly(dir, zerolog.Nop())
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "admin API") {
			t.Errorf("OpenReadOnly on a directory in use = %v, want ErrInUse pointing to the admin API", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		if _, err := OpenReadOnly(dir, zerolog.Nop()); err == nil {
			t.Errorf("OpenReadOnly(missing) = nil error")
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("OpenReadOnly(missing) created %s (stat: %v)", dir, err)
		}
	})
	t.Run("not a store", func(t *testing.T) {
		dir := t.TempDir()
		_, err := OpenReadOnly(dir, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "no falco-scorer store") {
			t.Errorf("OpenReadOnly(empty dir) = %v, want an error saying there is no store", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("OpenReadOnly(empty dir) wrote %v", ents)
		}
	})
	t.Run("not closed cleanly", func(t *testing.T) {
		// A copy of a live store is what a killed service leaves: Badger's
		// memtable log needs a replay that writes.
		live := t.TempDir()
		d := openAt(t, live)
		if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "redis:7", Bucket: hour(1), Counts: []byte("c")}}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(live)); err != nil {
			t.Fatal(err)
		}
		ro, err := OpenReadOnly(dir, zerolog.Nop())
		t.Logf("OpenReadOnly(uncleanly closed) = %v", err)
		if err == nil {
			// Badger could replay without writing: the data must be there.
			defer ro.Close()
			if infos, err := ro.Images(); err != nil || len(infos) != 1 {
				t.Errorf("Images() of an uncleanly closed store = %v, %v", infos, err)
			}
			return
		}
		if !errors.Is(err, ErrNeedsRecovery) || !strings.Contains(err.Error(), "start falco-scorer") {
			t.Errorf("OpenReadOnly(uncleanly closed) = %v, want ErrNeedsRecovery saying to start falco-scorer", err)
		}
	})
}

// TestOpenReadOnlyReadsFormat2: a store of the previous release (format 2,
// uncompressed outbox values, which format 3 still reads) is read, and
// exported, as it is, before this release's service ever ran on it; the
// format record stays 2 (the service upgrades it).
func TestOpenReadOnlyReadsFormat2(t *testing.T) {
	dir := t.TempDir()
	seedAt(t, dir, "redis:7")
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(formatKey(), u32(2)) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir, zerolog.Nop())
	if err != nil {
		t.Fatalf("OpenReadOnly(format 2) = %v", err)
	}
	if n, err := ro.Export(io.Discard); err != nil || n != 1 {
		t.Errorf("Export = %d images, %v; want 1", n, err)
	}
	err = ro.bdb.View(func(txn *badger.Txn) error {
		version, _, err := ro.storedFormat(txn, "")
		if err == nil && version != 2 {
			t.Errorf("format record after a read-only open = %d, want 2 (untouched)", version)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
}
