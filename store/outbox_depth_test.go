package store

import (
	"fmt"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestPendingCountCoversWholeOutbox: PendingCount (which the dispatcher
// exports as sink_queue_depth) counts every entry waiting in the outbox,
// not only those a reader has loaded, follows puts, acks and dead letters,
// and is restored by a count when the store opens again.
func TestPendingCountCoversWholeOutbox(t *testing.T) {
	dir := t.TempDir()
	d := openAt(t, dir)
	const n = 3000 // more than the cache of recent entries and than a batch
	for i := 0; i < n; i += 500 {
		p := make([]scorer.OutboxPut, 500)
		for j := range p {
			p[j] = scorer.OutboxPut{Sink: "kafka", AlertID: fmt.Sprint(i + j), Payload: []byte("{}")}
		}
		if err := d.Complete(nil, p); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := d.Pending("kafka", 0, 25)
	if err != nil || len(batch) != 25 {
		t.Fatalf("Pending(kafka, 0, 25) = %d entries, %v", len(batch), err)
	}
	if got, _ := d.PendingCount("kafka"); got != n {
		t.Fatalf("PendingCount(kafka) with %d waiting, 25 read = %d", n, got)
	}
	seqs := make([]uint64, 0, 24)
	for _, e := range batch[:24] {
		seqs = append(seqs, e.Seq)
	}
	if err := d.Ack("kafka", seqs); err != nil {
		t.Fatal(err)
	}
	if err := d.DeadLetter(batch[24], "test"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.PendingCount("kafka"); got != n-25 {
		t.Fatalf("PendingCount(kafka) after 24 acks and a dead letter = %d, want %d", got, n-25)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openAt(t, dir)
	if got, _ := d.PendingCount("kafka"); got != n-25 {
		t.Errorf("PendingCount(kafka) after reopen = %d, want %d", got, n-25)
	}
}
