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
	mu sync.Mutex
	w  io.Writer
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
// error is transient: the lines may be written again (duplicates, not
// losses).
func (s *Sink) Send(ctx context.Context, batch []sinks.Item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, it := range batch {
		buf.Write(bytes.TrimRight(it.Payload, "\n"))
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return sinks.WithReason("write_error", fmt.Errorf("write alerts: %w", err))
	}
	return nil
}

// Close does nothing: the writer belongs to the caller.
func (s *Sink) Close(context.Context) error { return nil }
