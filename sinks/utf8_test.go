package sinks_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

// TestOldDirtyPayloadsGoOutStrict: an outbox entry written before alerts
// were made strict JSON (invalid UTF-8 inside the Falco event) reaches the
// sink as strict JSON, both as the payload that Kafka and stdout forward
// and as the event the webhook re-renders.
func TestOldDirtyPayloadsGoOutStrict(t *testing.T) {
	for _, headerOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("headerOnly=%v", headerOnly), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarnessFor(t, testConfig(), &fakeSink{headerOnly: headerOnly})
				a := sinkstest.FalcoAlert(1, "nginx:1.27", "r")
				clean, err := a.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				old := bytes.Replace(clean, []byte(`"bash -i"`), []byte("\"bash \xff-i \\udc00\""), 1)
				if bytes.Equal(old, clean) || scorertest.StrictJSON(old) == nil {
					t.Fatal("fixture: no dirty payload")
				}
				h.ob.Put("fake", a.ID, old)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- h.d.Run(ctx) }()
				synctest.Wait()
				cancel()
				<-done
				h.sink.mu.Lock()
				defer h.sink.mu.Unlock()
				if len(h.sink.items) != 1 {
					t.Fatalf("sink got %d items, want 1", len(h.sink.items))
				}
				it := h.sink.items[0]
				if err := scorertest.StrictJSON(it.Payload); err != nil {
					t.Errorf("headerOnly %v: payload %q: %v", headerOnly, it.Payload, err)
				}
				if it.Alert != nil {
					if err := scorertest.StrictJSON(it.Alert.Event.Raw); err != nil {
						t.Errorf("event %q: %v", it.Alert.Event.Raw, err)
					}
				}
			})
		})
	}
}
