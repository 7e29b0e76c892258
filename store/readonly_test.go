package store

import (
	"errors"
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
