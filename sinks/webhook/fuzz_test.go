package webhook_test

import (
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
)

// FuzzFalcoJSON feeds arbitrary events: FalcoJSON must not panic, and what
// it returns must be strict JSON (UTF-8 included, whatever bytes the event
// had) that still decodes as a Falco event.
func FuzzFalcoJSON(f *testing.F) {
	f.Add([]byte(sinkstest.FalcoAlert(1, "nginx:1.27", "r").Event.Raw))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","priority":"Info","rule":"x","output_fields":null}`))
	f.Add([]byte(sinkstest.DirtyAlert(1, "nginx:1.27", "r").Event.Raw))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","priority":"Debug","rule":"x","output_fields":{"a":[1,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := scorer.DecodeJSON(raw)
		if err != nil {
			return
		}
		a := sinkstest.FalcoAlert(1, "img", "r")
		a.Event = ev
		out, err := webhook.FalcoJSON(a)
		if err != nil {
			return
		}
		if err := scorertest.StrictJSON(out); err != nil {
			t.Fatalf("FalcoJSON(%q) = %q: %v", raw, out, err)
		}
		back, err := scorer.DecodeJSON(out)
		if err != nil {
			t.Fatalf("DecodeJSON(FalcoJSON(%q)) = %v", raw, err)
		}
		if back.Priority != a.Priority || back.Fields.Value("scorer.alert_id") != a.ID {
			t.Fatalf("round trip lost priority or scorer fields: %+v", back)
		}
	})
}

func BenchmarkFalcoJSON(b *testing.B) {
	a := sinkstest.FalcoAlert(1, "nginx:1.27", "Terminal shell in container")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := webhook.FalcoJSON(a); err != nil {
			b.Fatal(err)
		}
	}
}
