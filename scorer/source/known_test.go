package source

import (
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestDecodeEncodeYearOverflow pins a bug in scorer (not owned here): DecodeJSON
// accepts a time whose UTC conversion leaves RFC 3339's four-digit years, and
// EncodeJSON then writes a "time" that DecodeJSON refuses, so a gRPC event or
// a re-encoded event with such a time would not replay from the journal. It
// skips while the bug is present and passes once scorer clamps or rejects such
// times.
func TestDecodeEncodeYearOverflow(t *testing.T) {
	for _, ts := range []string{"9999-12-31T23:00:00-05:00", "0000-01-01T00:00:00+01:00"} {
		in := `{"rule":"r","priority":"Info","time":"` + ts + `"}`
		ev, err := scorer.DecodeJSON([]byte(in))
		if err != nil {
			continue // rejected up front: fixed
		}
		raw, err := ev.EncodeJSON()
		if err != nil {
			t.Fatalf("EncodeJSON() error = %v", err)
		}
		if _, err := scorer.DecodeJSON(raw); err != nil {
			t.Skipf("known scorer bug: DecodeJSON(%s) ok, but DecodeJSON(EncodeJSON(...)) = %v", in, err)
		}
	}
}
