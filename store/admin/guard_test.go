package admin

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// send makes one request with the given headers ("Host" sets the request's
// host) and returns the status and body.
func send(t *testing.T, method, u string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBearerSchemeIsCaseInsensitive: RFC 9110 §11.1 makes the scheme name
// case-insensitive; "bearer <token>" used to get 401.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	_, srv := newServer(t, "s3cret")
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret", "BEARER s3cret", "BeArEr s3cret"} {
		if code, body := send(t, "GET", srv.URL+"/api/v1/baselines", nil, "Authorization", auth); code != http.StatusOK {
			t.Errorf("GET with %q = %d %s, want 200", auth, code, body)
		}
	}
	for _, auth := range []string{"Bearers3cret", "Basic s3cret", "s3cret", "Bearer  s3cret", "Bearer"} {
		if code, _ := send(t, "GET", srv.URL+"/api/v1/baselines", nil, "Authorization", auth); code != http.StatusUnauthorized {
			t.Errorf("GET with %q = %d, want 401", auth, code)
		}
	}
}

// TestMutatingRefusesBrowserRequests reproduces the report: a web page's
// cross-origin text/plain POST planted a baseline ({"imported": 1}). A
// browser can send text/plain, form and multipart bodies (or none) without
// a CORS preflight, and marks cross-origin requests with Origin and
// Sec-Fetch-Site.
func TestMutatingRefusesBrowserRequests(t *testing.T) {
	db, srv := newServer(t, "")
	var exported bytes.Buffer
	if _, err := db.Export(&exported, image); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetImage(image); err != nil {
		t.Fatal(err)
	}
	imp := srv.URL + "/api/v1/baselines/import"
	ndjson := []string{"Content-Type", "application/x-ndjson"}
	tests := []struct {
		name   string
		method string
		url    string
		hdr    []string
		want   int
	}{
		{"import text/plain", "POST", imp, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"import form", "POST", imp, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"import multipart", "POST", imp, []string{"Content-Type", "multipart/form-data; boundary=x"}, http.StatusUnsupportedMediaType},
		{"import without content type", "POST", imp, nil, http.StatusUnsupportedMediaType},
		{"import cross-site", "POST", imp, append([]string{"Sec-Fetch-Site", "cross-site"}, ndjson...), http.StatusForbidden},
		{"import same-site", "POST", imp, append([]string{"Sec-Fetch-Site", "same-site"}, ndjson...), http.StatusForbidden},
		{"import foreign origin", "POST", imp, append([]string{"Origin", "http://evil.example"}, ndjson...), http.StatusForbidden},
		{"replay text/plain", "POST", srv.URL + "/api/v1/deadletters/replay?sink=slack", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"replay cross-site", "POST", srv.URL + "/api/v1/deadletters/replay?sink=slack", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"reset cross-site", "DELETE", srv.URL + "/api/v1/baselines/other", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"reset form", "DELETE", srv.URL + "/api/v1/baselines/other", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := send(t, tt.method, tt.url, exported.Bytes(), tt.hdr...); code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.url, code, body, tt.want)
			}
		})
	}
	if infos, err := db.Images(); err != nil || len(infos) != 1 {
		t.Fatalf("images after refused requests = %v, %v; want only %q", infos, err, "other")
	}
	// What a CLI sends is still accepted: no Origin, a JSON type.
	for _, ct := range []string{"application/x-ndjson", "application/json", "application/jsonl", "application/x-ndjson; charset=utf-8"} {
		if code, body := send(t, "POST", imp, exported.Bytes(), "Content-Type", ct, "Sec-Fetch-Site", "none"); code != http.StatusOK {
			t.Errorf("import as %s = %d %s, want 200", ct, code, body)
		}
	}
	if code, body := send(t, "POST", srv.URL+"/api/v1/deadletters/replay?sink=slack", nil); code != http.StatusOK {
		t.Errorf("replay without a body = %d %s, want 200", code, body)
	}
}

// TestHostCheck: a DNS-rebinding page reaches the listener under its own
// host name; WithHostCheck refuses it before anything else runs.
func TestHostCheck(t *testing.T) {
	_, srv := newServer(t, "", WithHostCheck(func(host string) bool { return host == "127.0.0.1" || host == "localhost" }))
	_, port, _ := bytes.Cut([]byte(srv.URL), []byte("127.0.0.1:"))
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + string(port), http.StatusOK},
		{"localhost:" + string(port), http.StatusOK},
		{"localhost", http.StatusOK},
		{"rebind.evil.example:" + string(port), http.StatusForbidden},
		{"rebind.evil.example", http.StatusForbidden},
	} {
		if code, body := send(t, "GET", srv.URL+"/api/v1/baselines", nil, "Host", tc.host); code != tc.want {
			t.Errorf("GET with Host %q = %d %s, want %d", tc.host, code, body, tc.want)
		}
	}
}
