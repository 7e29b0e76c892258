package source

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// lineReader serves one line per Read and calls onLine(k) before serving line k.
type lineReader struct {
	lines  []string
	k      int
	onLine func(k int)
}

func (r *lineReader) Read(p []byte) (int, error) {
	if r.k >= len(r.lines) {
		return 0, io.EOF
	}
	r.k++
	if r.onLine != nil {
		r.onLine(r.k)
	}
	return copy(p, r.lines[r.k-1]), nil
}

// TestReadNDJSONCancelAcceptsNoUndecodedLine: when the caller's context is
// cancelled while the splitter hands a chunk over, the chunk must reach the
// reader as cancelled, never as lines whose zero Events would be accepted
// (found in review: they were, with the acceptor of replay, which does not
// check the context).
func TestReadNDJSONCancelAcceptsNoUndecodedLine(t *testing.T) {
	good := `{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z"}` + "\n"
	bad := 0
	for run := 0; run < 300 && bad == 0; run++ {
		lines := []string{"\n"} // one blank line: batches no longer align with chunks
		for i := 0; i < 200; i++ {
			lines = append(lines, good)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &lineReader{lines: lines, onLine: func(k int) {
			if k == 60 {
				cancel()
			}
		}}
		var got []scorer.Event
		acc := acceptFunc(func(_ context.Context, _ string, evs []scorer.Event) error {
			got = append(got, evs...) // an acceptor that does not check ctx, like AcceptUnjournaled
			return nil
		})
		_, err := ReadNDJSON(ctx, r, acc, NDJSONOptions{BatchSize: 4})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: err = %v", run, err)
		}
		for _, e := range got {
			if e.Rule == "" || e.Time.IsZero() {
				bad++
				t.Errorf("run %d: zero Event accepted: %+v", run, e)
				break
			}
		}
	}
}

// TestReadNDJSONStopOnErrorOnIdleStream: a bad line under StopOnError ends
// ReadNDJSON at once even when the stream then goes quiet: the line is
// handed over without waiting for a full chunk, and returning does not wait
// for the splitter's blocked read.
func TestReadNDJSONStopOnErrorOnIdleStream(t *testing.T) {
	// On synctest's fake clock: "within 2 s" whatever the machine is doing.
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go pw.Write([]byte("{oops\n")) // then the stream goes idle, like a quiet `tail -f`
		done := make(chan error, 1)
		go func() {
			_, err := ReadNDJSON(context.Background(), pr, &recorder{}, NDJSONOptions{StopOnError: true, BatchSize: 1})
			done <- err
		}()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			if !strings.Contains(fmtErr(err), "line 1") {
				t.Fatalf("err = %v", err)
			}
		default:
			t.Fatal("ReadNDJSON did not return within 2s of a fatal bad line on a quiet stream")
		}
	})
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
