package stdout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/falco-scorer/falco-scorer/sinks"
)

// Sink writes JSON lines.
type Sink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // one batch's lines, reused: a batch is written with one Write
}

// New returns a sink writing to w, or to os.Stdout when w is nil.
func New(w io.Writer) *Sink {
	if w == nil {
		w = os.Stdout
	}
	return &Sink{w: w}
}

// Name returns "stdout".
func (s *Sink) Name() string { return "stdout" }

// HeaderOnly reports true: stdout writes the stored payloads and reads
// nothing else.
func (s *Sink) HeaderOnly() bool { return true }

// Send writes each payload followed by a newline, in one Write. A write
// error is transient for the whole batch: the lines may be written again
// (duplicates, not losses).
func (s *Sink) Send(ctx context.Context, batch []sinks.Item) sinks.Result {
	if err := ctx.Err(); err != nil {
		return sinks.Failed(len(batch), sinks.Transient("", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.buf[:0]
	for _, it := range batch {
		buf = append(buf, bytes.TrimRight(it.Payload, "\n")...)
		buf = append(buf, '\n')
	}
	if cap(buf) <= 4<<20 { // keep the buffer of ordinary batches only
		s.buf = buf
	}
	if _, err := s.w.Write(buf); err != nil {
		return sinks.Failed(len(batch), sinks.Transient("write_error", fmt.Errorf("write alerts: %w", err)))
	}
	return sinks.Delivered(len(batch))
}

func (s *Sink) Close(context.Context) error { return nil }

// The dispatcher finds HeaderOnly by type assertion; a changed signature
// must fail the build, not quietly decode whole alerts.
var (
	_ sinks.Sink       = (*Sink)(nil)
	_ sinks.HeaderOnly = (*Sink)(nil)
)
