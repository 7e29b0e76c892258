package pipeline

import (
	"context"
	"math/rand/v2"
	"testing"
)

// TestPipelineReplaceDropsUnflushedCounts: an admin reset (or import) runs
// on the image's worker after the image left memory with the counts it had
// not flushed: a later flush must not write them over the new baseline, and
// the image's next event starts from what the store holds.
func TestPipelineReplaceDropsUnflushedCounts(t *testing.T) {
	const key = "nginx:1" // the image key of harness events for "nginx"
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	h.train("nginx", 4, 300, rand.New(rand.NewPCG(3, 4)))
	h.flushAll()
	h.train("nginx", 2, 300, rand.New(rand.NewPCG(5, 6))) // learned, not flushed yet
	// Evicted (max_images): its unflushed counts wait in the worker for the
	// next flush.
	h.onWorker(key, func(w *worker) { w.evictImage(w.images[key]) })
	ran := false
	err := h.p.Replace(context.Background(), key, func() error {
		ran = true
		st.mu.Lock()
		delete(st.buckets, key)
		delete(st.meta, key)
		st.mu.Unlock()
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("Replace() = %v (write ran: %v)", err, ran)
	}
	if s, _ := h.state(key); s != "" {
		t.Errorf("image still in memory after Replace (state %q)", s)
	}
	h.flushAll()
	st.mu.Lock()
	n, meta := len(st.buckets[key]), st.meta[key]
	st.mu.Unlock()
	if n != 0 || meta != nil {
		t.Errorf("after the reset and a flush the store holds %d blobs and meta %q for the image, want none", n, meta)
	}
}
