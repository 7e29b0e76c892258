package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/store"
)

const image = "docker.io/library/nginx:1.27"

func newServer(t *testing.T, token string, opts ...Option) (*store.DB, *httptest.Server) {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.InMemory = true
	db, err := store.Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := db.PutDeltas([]scorer.BaselineDelta{
		{Image: image, Bucket: b, Counts: []byte("c0"), Meta: []byte("m")},
		{Image: image, Bucket: b.Add(time.Hour), Counts: []byte("c1")},
		{Image: "other", Bucket: b, Counts: []byte("o")},
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(db, secret.New(token), zerolog.Nop(), opts...))
	t.Cleanup(srv.Close)
	return db, srv
}

func do(t *testing.T, method, u, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-ndjson") // the export's type
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestAuth(t *testing.T) {
	_, srv := newServer(t, "s3cret")
	tests := []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "nope", http.StatusUnauthorized},
		{"prefix of token", "s3cre", http.StatusUnauthorized},
		{"right token", "s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := do(t, "GET", srv.URL+"/api/v1/baselines", tt.token, nil); got != tt.want {
				t.Errorf("GET with %s = %d %s, want %d", tt.name, got, body, tt.want)
			}
		})
	}
}

func TestBaselineEndpoints(t *testing.T) {
	var changed []string
	describe := func(img string, meta []byte, b []scorer.BaselineBucket) any {
		return map[string]any{"blobs": len(b), "meta": string(meta)}
	}
	// The store write runs inside the exclusive hook (a pipeline holds
	// the image out of scoring meanwhile).
	db, srv := newServer(t, "", WithDescribe(describe), WithExclusive(func(i string, write func() error) error {
		changed = append(changed, i)
		return write()
	}))
	base := srv.URL + "/api/v1/baselines"

	code, body := do(t, "GET", base, "", nil)
	var list struct{ Images []store.ImageInfo }
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Images) != 2 {
		t.Fatalf("GET list = %d %s", code, body)
	}

	for _, u := range []string{base + "/" + url.PathEscape(image), base + "?image=" + url.QueryEscape(image)} {
		code, body = do(t, "GET", u, "", nil)
		var show ShowView
		if err := json.Unmarshal(body, &show); code != 200 || err != nil || show.Image != image || show.Blobs != 2 || len(show.BucketBlobs) != 2 {
			t.Errorf("GET %s = %d %s", u, code, body)
		}
		if !strings.Contains(string(body), `"meta": "m"`) {
			t.Errorf("GET %s lacks the Describe output: %s", u, body)
		}
	}
	if code, _ := do(t, "GET", base+"/missing", "", nil); code != http.StatusNotFound {
		t.Errorf("GET missing = %d, want 404", code)
	}

	code, exported := do(t, "GET", base+"/export?image="+url.QueryEscape(image), "", nil)
	if code != 200 || bytes.Count(exported, []byte("\n")) != 4 { // header, image, 2 buckets
		t.Fatalf("GET export = %d %s", code, exported)
	}
	if code, _ := do(t, "GET", base+"/export?image=missing", "", nil); code != http.StatusNotFound {
		t.Errorf("GET export of missing image = %d, want 404", code)
	}

	if code, body := do(t, "DELETE", base+"/"+url.PathEscape(image), "", nil); code != 200 {
		t.Fatalf("DELETE = %d %s", code, body)
	}
	if code, _ := do(t, "DELETE", base+"?image="+url.QueryEscape(image), "", nil); code != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404", code)
	}
	if code, body := do(t, "POST", base+"/import", "", exported); code != 200 || !strings.Contains(string(body), `"imported": 1`) {
		t.Fatalf("POST import = %d %s", code, body)
	}
	if _, b, err := db.Image(image); err != nil || len(b) != 2 {
		t.Errorf("after import Image = %d buckets, %v", len(b), err)
	}
	if code, body := do(t, "POST", base+"/import", "", []byte("garbage\n")); code != http.StatusBadRequest || !strings.Contains(string(body), "line 1") {
		t.Errorf("POST bad import = %d %s, want 400 naming line 1", code, body)
	}
	if strings.Join(changed, ",") != image+","+image+","+image { // reset, reset of nothing (404), import
		t.Errorf("exclusive calls = %v, want two resets then the import of %s", changed, image)
	}
}

func TestImportBodyLimit(t *testing.T) {
	db, srv := newServer(t, "", WithMaxImportBytes(64))
	var buf bytes.Buffer
	if _, err := db.Export(&buf); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "POST", srv.URL+"/api/v1/baselines/import", "", buf.Bytes()); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST oversized import = %d %s, want 413", code, body)
	}
}

func TestDeadLetterEndpoints(t *testing.T) {
	db, srv := newServer(t, "")
	if err := db.Complete(nil, []scorer.OutboxPut{{Sink: "slack", AlertID: "a1", Payload: []byte(`{"x":1}`)}}); err != nil {
		t.Fatal(err)
	}
	e, err := db.Pending("slack", 0, 1)
	if err != nil || len(e) != 1 {
		t.Fatal(e, err)
	}
	if err := db.DeadLetter(e[0], "400 invalid_blocks"); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, "GET", srv.URL+"/api/v1/deadletters?sink=slack", "", nil)
	if code != 200 || !strings.Contains(string(body), `"reason": "400 invalid_blocks"`) || !strings.Contains(string(body), `"payload": {`) {
		t.Fatalf("GET deadletters = %d %s", code, body)
	}
	if code, body := do(t, "GET", srv.URL+"/api/v1/deadletters?limit=0", "", nil); code != http.StatusBadRequest {
		t.Errorf("GET deadletters?limit=0 = %d %s, want 400", code, body)
	}
	code, body = do(t, "POST", srv.URL+"/api/v1/deadletters/replay?sink=slack", "", nil)
	if code != 200 || !strings.Contains(string(body), `"replayed": 1`) {
		t.Fatalf("POST replay = %d %s", code, body)
	}
	if e, _ := db.Pending("slack", 0, 10); len(e) != 1 {
		t.Errorf("Pending after replay = %d entries, want 1", len(e))
	}
}
