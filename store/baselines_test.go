package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/falco-scorer/falco-scorer/scorer"
)

var h0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func hour(n int) time.Time { return h0.Add(time.Duration(n) * time.Hour) }

type loaded struct {
	Meta    string
	Buckets []string // "hour:counts"
}

func loadAll(t *testing.T, d *DB, since time.Time) map[string]loaded {
	t.Helper()
	out := map[string]loaded{}
	err := d.LoadBaselines(since, func(image string, meta []byte, buckets []scorer.BaselineBucket) error {
		l := loaded{Meta: string(meta)}
		for _, b := range buckets {
			l.Buckets = append(l.Buckets, b.Bucket.Format("15")+":"+string(b.Counts))
		}
		out[image] = l
		return nil
	})
	if err != nil {
		t.Fatalf("LoadBaselines = %v", err)
	}
	return out
}

func TestBaselinesPutLoadDrop(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	img := "registry.example.com/team/app:1.2" // contains '/' and ':'
	flushes := [][]scorer.BaselineDelta{
		{{Image: img, Bucket: hour(0), Counts: []byte("a0"), Meta: []byte("m1")},
			{Image: "b", Bucket: hour(0), Counts: []byte("b0"), Meta: []byte("bm")}},
		{{Image: img, Bucket: hour(0), Counts: []byte("a0'"), Meta: []byte("m2")},
			{Image: img, Bucket: hour(1), Counts: []byte("a1")}}, // last non-nil meta wins
		{{Image: img, Bucket: hour(2), Counts: []byte("a2")}},             // nil meta keeps m2
		{{Image: "b", Bucket: hour(3), Counts: nil, Meta: []byte("bm2")}}, // meta only
	}
	for i, f := range flushes {
		if err := d.PutDeltas(f); err != nil {
			t.Fatalf("PutDeltas(flush %d) = %v", i, err)
		}
	}
	want := map[string]loaded{
		img: {Meta: "m2", Buckets: []string{"00:a0", "00:a0'", "01:a1", "02:a2"}},
		"b": {Meta: "bm2", Buckets: []string{"00:b0"}},
	}
	if diff := cmp.Diff(want, loadAll(t, d, time.Time{})); diff != "" {
		t.Errorf("LoadBaselines(all) (-want +got):\n%s", diff)
	}
	want = map[string]loaded{img: {Meta: "m2", Buckets: []string{"01:a1", "02:a2"}}, "b": {Meta: "bm2"}}
	if diff := cmp.Diff(want, loadAll(t, d, hour(1))); diff != "" {
		t.Errorf("LoadBaselines(since 01) (-want +got):\n%s", diff)
	}
	got, err := d.ImageBuckets(img, hour(0), hour(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[2].Bucket.Equal(hour(1)) || string(got[2].Counts) != "a1" {
		t.Errorf("ImageBuckets([00,02)) = %v", got)
	}
	if got, _ := d.ImageBuckets("unknown", hour(0), hour(9)); len(got) != 0 {
		t.Errorf("ImageBuckets(unknown) = %v, want none", got)
	}
	if err := d.DropBucketsBefore(hour(1)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := openAt(t, dir)
	want = map[string]loaded{img: {Meta: "m2", Buckets: []string{"01:a1", "02:a2"}}, "b": {Meta: "bm2"}}
	if diff := cmp.Diff(want, loadAll(t, d2, time.Time{})); diff != "" {
		t.Errorf("LoadBaselines after drop and reopen (-want +got):\n%s", diff)
	}
	// New blobs after reopen never overwrite old ones.
	if err := d2.PutDeltas([]scorer.BaselineDelta{{Image: img, Bucket: hour(2), Counts: []byte("a2'")}}); err != nil {
		t.Fatal(err)
	}
	if got := loadAll(t, d2, hour(2))[img].Buckets; !cmp.Equal(got, []string{"02:a2", "02:a2'"}) {
		t.Errorf("buckets after a flush on reopen = %v, want both blobs", got)
	}
	info, buckets, err := d2.Image(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Buckets != 2 || info.Blobs != 3 || !info.First.Equal(hour(1)) || !info.Last.Equal(hour(2)) || len(buckets) != 3 || info.Bytes == 0 {
		t.Errorf("Image(%s) = %+v, %d buckets", img, info, len(buckets))
	}
	if _, _, err := d2.Image("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image(nope) = %v, want ErrNotFound", err)
	}
	ok, err := d2.ResetImage(img)
	if err != nil || !ok {
		t.Fatalf("ResetImage = %v, %v", ok, err)
	}
	if ok, _ := d2.ResetImage(img); ok {
		t.Errorf("second ResetImage reported the image present")
	}
	if got := loadAll(t, d2, time.Time{}); len(got) != 1 {
		t.Errorf("images after reset = %v, want only b", got)
	}
}

// TestPutDeltasReplacesCorruptImageRecord: a flush without meta for an
// image whose stored record cannot be decoded (the scorer's stand-in while
// the record cannot be loaded) replaces the record instead of failing the
// whole flush, other images included, forever.
func TestPutDeltasReplacesCorruptImageRecord(t *testing.T) {
	d := openAt(t, t.TempDir())
	if err := d.bdb.Update(func(txn *badger.Txn) error { return txn.Set(imageKey("bad:1"), []byte{1, 2, 3}) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Image("bad:1"); err == nil {
		t.Fatal("Image of a corrupt record = nil error, want one")
	}
	err := d.PutDeltas([]scorer.BaselineDelta{
		{Image: "bad:1", Bucket: hour(1), Counts: []byte("c1")},
		{Image: "good:1", Bucket: hour(1), Counts: []byte("c2"), Meta: []byte(`{"v":1}`)},
	})
	if err != nil {
		t.Fatalf("PutDeltas with a corrupt stored record = %v, want nil", err)
	}
	info, buckets, err := d.Image("bad:1")
	if err != nil || len(buckets) != 1 || len(info.Meta) != 0 {
		t.Errorf("after the flush: Image(bad:1) = %+v, %d buckets, %v; want no meta and 1 bucket", info, len(buckets), err)
	}
	if _, buckets, err := d.Image("good:1"); err != nil || len(buckets) != 1 {
		t.Errorf("Image(good:1) = %d buckets, %v; want 1", len(buckets), err)
	}
}

func TestPutDeltasRejectsBadInput(t *testing.T) {
	d := openAt(t, "")
	tests := []struct {
		name  string
		delta scorer.BaselineDelta
	}{
		{"empty image", scorer.BaselineDelta{Bucket: hour(0), Counts: []byte("x")}},
		{"huge image name", scorer.BaselineDelta{Image: strings.Repeat("i", maxImageLen+1), Bucket: hour(0)}},
		{"pre-1970 bucket", scorer.BaselineDelta{Image: "x", Bucket: time.Unix(-5, 0), Counts: []byte("x")}},
	}
	for _, tt := range tests {
		if err := d.PutDeltas([]scorer.BaselineDelta{tt.delta}); err == nil {
			t.Errorf("PutDeltas(%s) = nil, want error", tt.name)
		}
	}
}

func TestMaintenanceExpiresBucketsAndIdleImages(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.BucketRetention = 48 * time.Hour
	cfg.ImageTTL = 10 * 24 * time.Hour
	d := openAt(t, cfg.Dir)
	d.cfg = cfg
	clock := &fakeClock{t: hour(0)}
	d.now = clock.Now
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "old", Bucket: hour(0), Counts: []byte("o")}}); err != nil {
		t.Fatal(err)
	}
	clock.Set(hour(24 * 11))
	if err := d.PutDeltas([]scorer.BaselineDelta{
		{Image: "live", Bucket: hour(0), Counts: []byte("l0")},
		{Image: "live", Bucket: hour(24 * 11), Counts: []byte("l1")},
	}); err != nil {
		t.Fatal(err)
	}
	d.Maintain(context.Background())
	got := loadAll(t, d, time.Time{})
	want := map[string]loaded{"live": {Buckets: []string{"00:l1"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after maintenance (-want +got):\n%s", diff)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	src := openAt(t, t.TempDir())
	src.now = func() time.Time { return hour(5) }
	var deltas []scorer.BaselineDelta
	for i, img := range []string{"docker.io/library/nginx:1.27", "sha256:abc", "x"} {
		for h := range i + 2 {
			deltas = append(deltas, scorer.BaselineDelta{Image: img, Bucket: hour(h), Counts: []byte{byte(i), byte(h)}, Meta: []byte("meta-" + img)})
		}
	}
	if err := src.PutDeltas(deltas); err != nil {
		t.Fatal(err)
	}
	if err := src.PutDeltas(deltas[:1]); err != nil { // a second blob in one bucket
		t.Fatal(err)
	}
	var file bytes.Buffer
	n, err := src.Export(&file)
	if err != nil || n != 3 {
		t.Fatalf("Export = %d, %v, want 3 images", n, err)
	}
	dst := openAt(t, t.TempDir())
	if err := dst.PutDeltas([]scorer.BaselineDelta{{Image: "x", Bucket: hour(9), Counts: []byte("stale")}}); err != nil {
		t.Fatal(err)
	}
	imported, err := dst.Import(bytes.NewReader(file.Bytes()), ImportLimits{})
	if err != nil || len(imported) != 3 {
		t.Fatalf("Import = %v, %v, want 3 images", imported, err)
	}
	want, wantB := snapshot(t, src)
	got, gotB := snapshot(t, dst)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("imported images (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantB, gotB); diff != "" {
		t.Errorf("imported buckets (-want +got):\n%s", diff)
	}
	// Export of selected images, including an unknown one.
	var one bytes.Buffer
	if n, err := src.Export(&one, "x"); err != nil || n != 1 {
		t.Errorf("Export(x) = %d, %v", n, err)
	}
	if _, err := src.Export(&one, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Export(missing) = %v, want ErrNotFound", err)
	}
}

func snapshot(t *testing.T, d *DB) ([]ImageInfo, map[string][]scorer.BaselineBucket) {
	t.Helper()
	infos, err := d.Images()
	if err != nil {
		t.Fatal(err)
	}
	buckets := map[string][]scorer.BaselineBucket{}
	for _, in := range infos {
		_, b, err := d.Image(in.Image)
		if err != nil {
			t.Fatal(err)
		}
		buckets[in.Image] = b
	}
	return infos, buckets
}

func TestImportRejectsHostileFiles(t *testing.T) {
	const hdr = `{"format":"falco-scorer-baselines","version":1,"exported_at":"2026-01-01T00:00:00Z","images":1}` + "\n"
	const img = `{"kind":"image","image":"a","last_seen":"2026-01-01T00:00:00Z","meta":"bQ=="}` + "\n"
	tests := []struct {
		name, file, want string
		lim              ImportLimits
	}{
		{"empty", "", "empty file", ImportLimits{}},
		{"not json", "hello\n", "line 1: header: invalid record", ImportLimits{}},
		{"other format", `{"format":"x","version":1}` + "\n", `format "x"`, ImportLimits{}},
		{"future version", `{"format":"falco-scorer-baselines","version":3}` + "\n", "unsupported version 3", ImportLimits{}},
		{"version 2 image without its bucket count", `{"format":"falco-scorer-baselines","version":2,"images":1}` + "\n" + `{"kind":"image","image":"nginx:1","last_seen":"2026-01-01T00:00:00Z"}` + "\n", "missing buckets", ImportLimits{}},
		{"unknown field", hdr + `{"kind":"image","image":"a","last_seen":"2026-01-01T00:00:00Z","evil":1}` + "\n", `line 2: invalid record: json: unknown field "evil"`, ImportLimits{}},
		{"unknown kind", hdr + `{"kind":"rm","image":"a"}` + "\n", `unknown record kind "rm"`, ImportLimits{}},
		{"bucket first", hdr + `{"kind":"bucket","image":"a","bucket":"2026-01-01T00:00:00Z","counts":"AA=="}` + "\n", "not after that image's record", ImportLimits{}},
		{"bucket of other image", hdr + img + `{"kind":"bucket","image":"b","bucket":"2026-01-01T00:00:00Z","counts":"AA=="}` + "\n", "not after that image's record", ImportLimits{}},
		{"bad base64", hdr + img + `{"kind":"bucket","image":"a","bucket":"2026-01-01T00:00:00Z","counts":"!!"}` + "\n", "line 3: invalid record", ImportLimits{}},
		{"pre-1970", hdr + img + `{"kind":"bucket","image":"a","bucket":"1960-01-01T00:00:00Z","counts":"AA=="}` + "\n", "out of range", ImportLimits{}},
		{"missing counts", hdr + img + `{"kind":"bucket","image":"a","bucket":"2026-01-01T00:00:00Z"}` + "\n", "without counts", ImportLimits{}},
		{"out of order", hdr + img + `{"kind":"bucket","image":"a","bucket":"2026-01-02T00:00:00Z","counts":"AA=="}` + "\n" + `{"kind":"bucket","image":"a","bucket":"2026-01-01T00:00:00Z","counts":"AA=="}` + "\n", "out of order", ImportLimits{}},
		{"duplicate image", hdr + img + img, "appears twice", ImportLimits{}},
		{"empty image name", hdr + `{"kind":"image","image":"","last_seen":"2026-01-01T00:00:00Z"}` + "\n", "image name length 0", ImportLimits{}},
		{"missing last_seen", hdr + `{"kind":"image","image":"a"}` + "\n", "missing last_seen", ImportLimits{}},
		{"truncated", strings.Replace(hdr, `"images":1`, `"images":2`, 1) + img, "announces 2 images, file holds 1", ImportLimits{}},
		{"long line", hdr + strings.Replace(img, "bQ==", strings.Repeat("AAAA", 50), 1), "line 2: line longer than 120 bytes", ImportLimits{MaxLineBytes: 120}},
		{"two values on a line", hdr + strings.TrimSpace(img) + " {}\n", "more than one JSON value", ImportLimits{}},
		{"image too large", hdr + img + `{"kind":"bucket","image":"a","bucket":"2026-01-01T00:00:00Z","counts":"AAAAAAAAAAAA"}` + "\n", "larger than 5 bytes", ImportLimits{MaxImageBytes: 5}},
		{"too many images", strings.Replace(hdr, `"images":1`, `"images":2`, 1) + img + strings.Replace(img, `"a"`, `"b"`, 1), "more than 1 images", ImportLimits{MaxImages: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openAt(t, "")
			_, err := d.Import(strings.NewReader(tt.file), tt.lim)
			var ie *ImportError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Import(%s) = %v, want an *ImportError containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func FuzzImport(f *testing.F) {
	d := openAt(f, "")
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "a:1", Bucket: hour(0), Counts: []byte("c"), Meta: []byte("m")}}); err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := d.Export(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"format":"falco-scorer-baselines","version":1,"images":0}`))
	f.Add([]byte("{}\n{}\n"))
	// One store for all inputs: opening Badger per input would starve the
	// fuzzer. Import must never panic, and every failure must say where.
	dst := openAt(f, "")
	f.Fuzz(func(t *testing.T, file []byte) {
		_, err := dst.Import(bytes.NewReader(file), ImportLimits{MaxLineBytes: 1 << 16, MaxImageBytes: 1 << 16, MaxImages: 100})
		var ie *ImportError
		if err != nil && !errors.As(err, &ie) {
			t.Fatalf("Import = %v, want an *ImportError", err)
		}
		if _, err := dst.Images(); err != nil {
			t.Fatalf("Images after import = %v", err)
		}
	})
}

func TestCompactBucketReplacesBlobsAtomically(t *testing.T) {
	d := openAt(t, "")
	b0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "app:1", Bucket: b0, Counts: []byte{byte(i + 1)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "app:1", Bucket: b0.Add(time.Hour), Counts: []byte{9}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.CompactBucket("app:1", b0, 2, []byte{42}); !errors.Is(err, ErrConflict) {
		t.Fatalf("CompactBucket(expect 2 of 3) = %v, want ErrConflict", err)
	}
	if err := d.CompactBucket("app:1", b0, 3, []byte{42}); err != nil {
		t.Fatalf("CompactBucket() = %v", err)
	}
	got, err := d.ImageBuckets("app:1", b0, b0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Counts, []byte{42}) || !bytes.Equal(got[1].Counts, []byte{9}) {
		t.Errorf("buckets after compaction = %+v, want the merged blob then the next bucket's", got)
	}
	// A later flush still gets a fresh sequence: nothing is overwritten.
	if err := d.PutDeltas([]scorer.BaselineDelta{{Image: "app:1", Bucket: b0, Counts: []byte{7}}}); err != nil {
		t.Fatal(err)
	}
	got, _ = d.ImageBuckets("app:1", b0, b0.Add(time.Hour))
	if len(got) != 2 {
		t.Errorf("blobs in the bucket after another flush = %d, want 2", len(got))
	}
}
