package stdout_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/stdout"
)

// TestLinesAreStrictJSON: each line is strict JSON even when the event
// carried bytes that are not UTF-8.
func TestLinesAreStrictJSON(t *testing.T) {
	var out bytes.Buffer
	batch := sinkstest.Items(t, sinkstest.DirtyAlert(1, "nginx:1.27", "r"), sinkstest.FalcoAlert(2, "nginx:1.27", "r"))
	if r := stdout.New(&out).Send(context.Background(), batch); !r.OK() {
		t.Fatalf("Send() = %v", r)
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("lines = %d, want 2", len(lines))
	}
	for i, l := range lines {
		if err := scorertest.StrictJSON(l); err != nil {
			t.Errorf("line %d %q: %v", i, l, err)
		}
	}
}
