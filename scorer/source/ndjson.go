package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// NDJSONOptions tune ReadNDJSON. The zero value is usable.
type NDJSONOptions struct {
	// Source is the source name given to Accept (default "ndjson").
	Source string
	// MaxLineBytes bounds one line (default 1 MiB); longer lines are bad
	// lines, skipped without being held in memory.
	MaxLineBytes int
	// BatchSize is the number of events per Accept call (default 256).
	BatchSize int
	// StopOnError makes the first bad line fatal.
	StopOnError bool
	// MaxErrors bounds the LineErrors kept in Stats (default 100); all bad
	// lines are counted regardless.
	MaxErrors int
	// RetryWait is the first wait after ErrOverloaded (default 20ms,
	// doubling up to 1s); Accept is retried until ctx ends.
	RetryWait time.Duration
	// Progress, when set, is called with the number of bytes consumed so
	// far after each batch and once at the end.
	Progress func(bytesRead int64)
}

func (o NDJSONOptions) withDefaults() NDJSONOptions {
	if o.Source == "" {
		o.Source = SourceNDJSON
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 1 << 20
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 100
	}
	if o.RetryWait <= 0 {
		o.RetryWait = 20 * time.Millisecond
	}
	return o
}

// LineError is one bad line.
type LineError struct {
	Line   int64  // 1-based line number
	Reason string // bounded: a scorer decode reason or "line_too_long"
	Msg    string
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Stats summarises a ReadNDJSON run.
type Stats struct {
	Lines    int64       // lines read, blank ones included
	Blank    int64       // blank lines skipped
	Events   int64       // events accepted
	Bad      int64       // lines that were not a Falco event
	Bytes    int64       // bytes consumed
	Retries  int64       // Accept calls retried after ErrOverloaded
	Errors   []LineError // the first MaxErrors bad lines
	Batches  int64       // successful Accept calls
	Duration time.Duration
}

// ReadNDJSON reads Falco JSON events, one per line, from r and accepts them in
// batches. Blank lines are skipped; bad lines are counted and reported in
// Stats (fatal only with StopOnError). ErrOverloaded is retried with a short
// wait; any other Accept error stops the read and is returned, with Stats
// counting only what was accepted before it. Events of a batch that was not
// accepted are not counted.
//
// Decoding runs on every CPU: one goroutine splits the input into chunks of
// lines, decoders decode chunks in parallel, and the caller's goroutine
// takes the chunks back in input order, so events are accepted in the order
// of the file and everything above behaves as if one goroutine did it all.
// A single decoding goroutine capped replay near 250k events/s. When it
// returns early (an error, cancellation) while a read of r is blocked, that
// read is left to return on its own; nothing more is read after it.
func ReadNDJSON(ctx context.Context, r io.Reader, acc scorer.Acceptor, opts NDJSONOptions) (Stats, error) {
	opts = opts.withDefaults()
	start := time.Now()
	var st Stats
	defer func() { st.Duration = time.Since(start) }()

	ctx, cancel := context.WithCancel(ctx)
	chunks := decodeChunks(ctx, r, opts.MaxLineBytes, opts.BatchSize)
	defer chunks.stop(cancel)

	var consumed int64
	batch := make([]scorer.Event, 0, opts.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := acceptRetry(ctx, acc, opts.Source, batch, opts.RetryWait)
		st.Retries += n
		if err != nil {
			return err
		}
		st.Events += int64(len(batch))
		st.Batches++
		// A fresh slice: the acceptor may keep the one it was given.
		batch = make([]scorer.Event, 0, opts.BatchSize)
		if opts.Progress != nil {
			opts.Progress(consumed)
		}
		return nil
	}
	bad := func(le LineError) error {
		st.Bad++
		if len(st.Errors) < opts.MaxErrors {
			st.Errors = append(st.Errors, le)
		}
		if opts.StopOnError {
			return le
		}
		return nil
	}
	for c := range chunks.ordered {
		select {
		case <-c.done:
		case <-ctx.Done():
			st.Bytes = consumed
			return st, ctx.Err()
		}
		for i := range c.lines {
			l := &c.lines[i]
			consumed = l.consumed
			st.Lines++
			switch {
			case l.tooLong:
				if err := bad(LineError{Line: st.Lines, Reason: reasonLineTooLong, Msg: fmt.Sprintf("line longer than %d bytes", opts.MaxLineBytes)}); err != nil {
					st.Bytes = consumed
					return st, err
				}
			case l.blank:
				st.Blank++
			case l.err != nil:
				if err := bad(LineError{Line: st.Lines, Reason: decodeReason(l.err), Msg: l.err.Error()}); err != nil {
					st.Bytes = consumed
					return st, err
				}
			default:
				batch = append(batch, l.ev)
				if len(batch) == opts.BatchSize {
					if err := flush(); err != nil {
						st.Bytes = consumed
						return st, err
					}
				}
			}
		}
		consumed = c.consumed
		if c.err != nil {
			st.Bytes = consumed
			if errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded) {
				return st, c.err
			}
			return st, fmt.Errorf("read ndjson: %w", c.err)
		}
	}
	if err := ctx.Err(); err != nil { // the splitter stopped early
		st.Bytes = consumed
		return st, err
	}
	err := flush()
	st.Bytes = consumed
	if err == nil && opts.Progress != nil {
		opts.Progress(consumed)
	}
	return st, err
}

// chunk is a run of consecutive input lines, decoded by one decoder.
type chunk struct {
	lines    []chunkLine
	consumed int64         // input bytes consumed up to the end of the chunk
	err      error         // the read error that ended the input (not io.EOF)
	done     chan struct{} // closed once lines are decoded
}

type chunkLine struct {
	raw      []byte // the line, owned: it becomes the event's Raw
	consumed int64  // input bytes consumed up to the end of this line
	blank    bool
	tooLong  bool
	ev       scorer.Event
	err      error
}

// chunkPipe is the running splitter and decoders of one ReadNDJSON.
type chunkPipe struct {
	ordered  <-chan *chunk // every chunk, in input order
	decoders sync.WaitGroup
}

// decodeChunks starts a splitter goroutine and one decoder per CPU (at most
// 4: beyond that the pipeline, not decoding, is the limit). A chunk is
// handed over when it holds perChunk lines or when the input read so far is
// used up (the next read may block: a quiet stream's lines, and a bad one
// under StopOnError, must not wait for more input). At most decoders+2
// chunks exist at once (queued in ordered, being built, being read), so
// memory stays bounded whatever the input's size.
func decodeChunks(ctx context.Context, r io.Reader, maxLine, perChunk int) *chunkPipe {
	decoders := min(max(runtime.GOMAXPROCS(0), 1), 4)
	work := make(chan *chunk, decoders)
	ordered := make(chan *chunk, decoders)
	p := &chunkPipe{ordered: ordered}
	p.decoders.Add(decoders)
	for range decoders {
		go func() {
			defer p.decoders.Done()
			for {
				select {
				case c, ok := <-work:
					if !ok {
						return
					}
					for i := range c.lines {
						l := &c.lines[i]
						if l.raw != nil {
							l.ev, l.err = scorer.DecodeJSONOwned(l.raw)
							l.raw = nil
						}
					}
					close(c.done)
				case <-ctx.Done():
					return // the reader has stopped waiting for chunks
				}
			}
		}()
	}
	go func() {
		defer close(work)
		defer close(ordered)
		sp := newSplitter(r, maxLine)
		for {
			c := &chunk{lines: make([]chunkLine, 0, perChunk), done: make(chan struct{})}
			end := false
			for len(c.lines) < perChunk {
				if err := ctx.Err(); err != nil {
					c.err = err
					break
				}
				if len(c.lines) > 0 && sp.br.Buffered() == 0 {
					break // hand over what we have before a read that may block
				}
				line, tooLong, err := sp.next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						c.err = err
					}
					end = true
					break
				}
				l := chunkLine{consumed: sp.consumed, tooLong: tooLong}
				if !tooLong {
					if len(bytes.TrimSpace(line)) == 0 {
						l.blank = true
					} else {
						l.raw = bytes.Clone(line)
					}
				}
				c.lines = append(c.lines, l)
			}
			c.consumed = sp.consumed
			select {
			case ordered <- c:
			case <-ctx.Done():
				return
			}
			select {
			case work <- c:
			case <-ctx.Done():
				// The reader may already hold c: it must find a cancelled
				// chunk, not undecoded lines.
				c.lines, c.err = nil, ctx.Err()
				close(c.done)
				return
			}
			if end || c.err != nil {
				return
			}
		}
	}()
	return p
}

// stop cancels the splitter and decoders and waits for the decoders. A
// splitter blocked in a read of r returns when that read does (it reads
// nothing more): ReadNDJSON does not wait for input that may never come.
func (p *chunkPipe) stop(cancel context.CancelFunc) {
	cancel()
	p.decoders.Wait()
}

// acceptRetry calls Accept until it succeeds, retrying ErrOverloaded with a
// doubling wait (up to 1s) until ctx ends. It returns the number of retries.
func acceptRetry(ctx context.Context, acc scorer.Acceptor, source string, events []scorer.Event, wait time.Duration) (int64, error) {
	var retries int64
	for {
		err := acc.Accept(ctx, source, events)
		if err == nil {
			return retries, nil
		}
		if !errors.Is(err, scorer.ErrOverloaded) {
			return retries, fmt.Errorf("accept %d events: %w", len(events), err)
		}
		retries++
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return retries, fmt.Errorf("accept %d events: %w", len(events), ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// splitter yields lines without their "\n" or "\r\n", holding at most max
// bytes of a line in memory.
type splitter struct {
	br       *bufio.Reader
	max      int
	buf      []byte
	consumed int64
}

func newSplitter(r io.Reader, max int) *splitter {
	return &splitter{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line, valid until the following call. tooLong
// reports a line over the bound (its content is dropped). It returns io.EOF
// when the input is exhausted.
func (s *splitter) next() (line []byte, tooLong bool, err error) {
	s.buf = s.buf[:0]
	var n int
	for {
		frag, err := s.br.ReadSlice('\n')
		n += len(frag)
		s.consumed += int64(len(frag))
		if !tooLong {
			if len(s.buf)+len(frag) > s.max+2 { // room for "\r\n"
				tooLong, s.buf = true, s.buf[:0]
			} else if err == nil && len(s.buf) == 0 {
				line = frag // whole line in the reader's buffer: no copy
			} else {
				s.buf = append(s.buf, frag...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if n == 0 {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		break
	}
	if tooLong {
		return nil, true, nil
	}
	if line == nil {
		line = s.buf
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > s.max {
		return nil, true, nil
	}
	return line, false, nil
}
