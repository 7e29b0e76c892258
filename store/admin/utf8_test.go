package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestDeadLetterPayloadIsUTF8: a dead letter whose payload holds bytes
// that are not UTF-8 (written before alerts were made strict JSON) is
// listed as UTF-8 JSON, each bad byte as U+FFFD.
func TestDeadLetterPayloadIsUTF8(t *testing.T) {
	db, srv := newServer(t, "")
	payload := []byte("{\"falco\":{\"output\":\"open /tmp/\xff.sh\"}}")
	if err := db.Complete(nil, []scorer.OutboxPut{{Sink: "kafka", AlertID: "a1", Payload: payload}}); err != nil {
		t.Fatal(err)
	}
	e, err := db.Pending("kafka", 0, 1)
	if err != nil || len(e) != 1 {
		t.Fatal(e, err)
	}
	if err := db.DeadLetter(e[0], "permanent"); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, "GET", srv.URL+"/api/v1/deadletters?sink=kafka", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET deadletters = %d %s", code, body)
	}
	if !json.Valid(body) || !utf8.Valid(body) || !bytes.Contains(body, []byte(`open /tmp/\ufffd.sh`)) {
		t.Errorf("GET deadletters = %q, want UTF-8 JSON with the payload's bad byte as \\ufffd", body)
	}
}
