package source

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func TestReadNDJSON(t *testing.T) {
	good := `{"rule":"r%d","priority":"Info","time":"2026-11-24T12:00:00Z"}`
	line := func(i int) string { return strings.Replace(good, "%d", itoa(i), 1) }
	long := `{"rule":"` + strings.Repeat("x", 300) + `","priority":"Info","time":"2026-11-24T12:00:00Z"}`
	hugeRule := "huge" // the bulk is in output: a rule name is held to scorer.MaxIdentityBytes
	huge := `{"rule":"` + hugeRule + `","output":"` + strings.Repeat("h", 200<<10) + `","priority":"Info","time":"2026-11-24T12:00:00Z"}`
	tests := []struct {
		name       string
		input      string
		opts       NDJSONOptions
		wantRules  []string
		wantStats  Stats // Lines, Blank, Events, Bad, Batches compared
		wantErrs   []LineError
		wantErrMsg string
	}{
		{
			name:      "blank, crlf, no final newline",
			input:     "\n" + line(1) + "\r\n  \n" + line(2) + "\n" + line(3),
			wantRules: []string{"r1", "r2", "r3"},
			wantStats: Stats{Lines: 5, Blank: 2, Events: 3, Batches: 1},
		},
		{
			name:      "bad lines are counted, not fatal",
			input:     line(1) + "\n{oops\n" + `{"priority":"Info","time":"2026-11-24T12:00:00Z"}` + "\n" + line(2) + "\n",
			wantRules: []string{"r1", "r2"},
			wantStats: Stats{Lines: 4, Events: 2, Bad: 2, Batches: 1},
			wantErrs: []LineError{
				{Line: 2, Reason: scorer.ReasonInvalidJSON},
				{Line: 3, Reason: scorer.ReasonMissingField},
			},
		},
		{
			name:      "line over the bound is skipped",
			input:     line(1) + "\n" + long + "\n" + line(2) + "\n",
			opts:      NDJSONOptions{MaxLineBytes: 200},
			wantRules: []string{"r1", "r2"},
			wantStats: Stats{Lines: 3, Events: 2, Bad: 1, Batches: 1},
			wantErrs:  []LineError{{Line: 2, Reason: reasonLineTooLong}},
		},
		{
			name:      "line longer than the read buffer is kept",
			input:     line(1) + "\n" + huge + "\n" + line(2),
			wantRules: []string{hugeRule, "r1", "r2"},
			wantStats: Stats{Lines: 3, Events: 3, Batches: 1},
		},
		{
			name:      "line longer than the read buffer and the bound",
			input:     line(1) + "\n" + huge + "\n" + line(2),
			opts:      NDJSONOptions{MaxLineBytes: 100 << 10},
			wantRules: []string{"r1", "r2"},
			wantStats: Stats{Lines: 3, Events: 2, Bad: 1, Batches: 1},
			wantErrs:  []LineError{{Line: 2, Reason: reasonLineTooLong}},
		},
		{
			name:      "batches",
			input:     line(1) + "\n" + line(2) + "\n" + line(3) + "\n" + line(4) + "\n" + line(5) + "\n",
			opts:      NDJSONOptions{BatchSize: 2},
			wantRules: []string{"r1", "r2", "r3", "r4", "r5"},
			wantStats: Stats{Lines: 5, Events: 5, Batches: 3},
		},
		{
			name:       "stop on error",
			input:      line(1) + "\n{oops\n" + line(2) + "\n",
			opts:       NDJSONOptions{StopOnError: true},
			wantStats:  Stats{Lines: 2, Bad: 1},
			wantErrs:   []LineError{{Line: 2, Reason: scorer.ReasonInvalidJSON}},
			wantErrMsg: "line 2: invalid JSON",
		},
		{
			name:      "empty input",
			input:     "",
			wantStats: Stats{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			var progress []int64
			tc.opts.Progress = func(n int64) { progress = append(progress, n) }
			st, err := ReadNDJSON(context.Background(), strings.NewReader(tc.input), rec, tc.opts)
			if tc.wantErrMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrMsg) {
					t.Fatalf("ReadNDJSON() error = %v, want %q", err, tc.wantErrMsg)
				}
			} else if err != nil {
				t.Fatalf("ReadNDJSON() error = %v", err)
			}
			if d := cmp.Diff(tc.wantRules, rules(rec.got()), ignoreRaw...); d != "" {
				t.Errorf("accepted rules (-want +got):\n%s", d)
			}
			counts := func(s Stats) [5]int64 { return [5]int64{s.Lines, s.Blank, s.Events, s.Bad, s.Batches} }
			if got, want := counts(st), counts(tc.wantStats); got != want {
				t.Errorf("ReadNDJSON() [lines blank events bad batches] = %v, want %v", got, want)
			}
			var gotErrs []LineError
			for _, e := range st.Errors {
				gotErrs = append(gotErrs, LineError{Line: e.Line, Reason: e.Reason})
			}
			if d := cmp.Diff(tc.wantErrs, gotErrs); d != "" {
				t.Errorf("line errors (-want +got):\n%s", d)
			}
			if tc.wantErrMsg == "" {
				if st.Bytes != int64(len(tc.input)) {
					t.Errorf("Stats.Bytes = %d, want %d", st.Bytes, len(tc.input))
				}
				if len(progress) == 0 || progress[len(progress)-1] != int64(len(tc.input)) {
					t.Errorf("last progress = %v, want %d", progress, len(tc.input))
				}
			}
		})
	}
}

func TestReadNDJSONOverload(t *testing.T) {
	rec := &recorder{fail: func(call int) error {
		if call <= 2 {
			return scorer.ErrOverloaded
		}
		return nil
	}}
	st, err := ReadNDJSON(context.Background(), strings.NewReader(sampleJSON+"\n"), rec, NDJSONOptions{RetryWait: time.Millisecond})
	if err != nil || st.Events != 1 || st.Retries != 2 {
		t.Errorf("ReadNDJSON() = events %d retries %d err %v, want 1, 2, nil", st.Events, st.Retries, err)
	}

	// Any other Accept error stops the read.
	fail := &recorder{fail: func(int) error { return scorer.ErrUnavailable }}
	st, err = ReadNDJSON(context.Background(), strings.NewReader(sampleJSON+"\n"), fail, NDJSONOptions{})
	if !errors.Is(err, scorer.ErrUnavailable) || st.Events != 0 {
		t.Errorf("ReadNDJSON() with unavailable = events %d err %v, want 0 and ErrUnavailable", st.Events, err)
	}

	// Cancellation ends an overload wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	busy := &recorder{fail: func(int) error { return scorer.ErrOverloaded }}
	if _, err := ReadNDJSON(ctx, strings.NewReader(sampleJSON+"\n"), busy, NDJSONOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ReadNDJSON() while always overloaded = %v, want context.DeadlineExceeded", err)
	}
}

// TestReadNDJSONKeepsInputOrder reads an input of many chunks, decoded in
// parallel, and checks that events, bad lines and progress come out exactly
// as a line-by-line reading gives them.
func TestReadNDJSONKeepsInputOrder(t *testing.T) {
	var in strings.Builder
	var wantRules []string
	var wantBad []int64
	const lines = 5000
	for i := 1; i <= lines; i++ {
		switch {
		case i%97 == 0:
			in.WriteString("{oops\n")
			wantBad = append(wantBad, int64(i))
		case i%31 == 0:
			in.WriteString("   \n")
		default:
			r := "r" + itoa(i)
			wantRules = append(wantRules, r)
			in.WriteString(`{"rule":"` + r + `","priority":"Info","time":"2026-11-24T12:00:00Z"}` + "\n")
		}
	}
	rec := &recorder{}
	var progress []int64
	st, err := ReadNDJSON(context.Background(), strings.NewReader(in.String()), rec, NDJSONOptions{
		BatchSize: 7, MaxErrors: lines,
		Progress: func(n int64) { progress = append(progress, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var gotRules []string
	for _, e := range rec.got() {
		gotRules = append(gotRules, e.Rule)
	}
	if d := cmp.Diff(wantRules, gotRules); d != "" {
		t.Errorf("accepted rules, in order (-want +got):\n%s", d)
	}
	var gotBad []int64
	for _, e := range st.Errors {
		gotBad = append(gotBad, e.Line)
	}
	if d := cmp.Diff(wantBad, gotBad); d != "" {
		t.Errorf("bad line numbers (-want +got):\n%s", d)
	}
	if st.Lines != lines || st.Events != int64(len(wantRules)) || st.Bytes != int64(in.Len()) {
		t.Errorf("Stats lines %d events %d bytes %d, want %d %d %d", st.Lines, st.Events, st.Bytes, lines, len(wantRules), in.Len())
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] < progress[i-1] {
			t.Fatalf("progress went back: %v", progress)
		}
	}
}

// TestReadNDJSONCancelled: cancelling the context stops a read of an endless
// input with the context's error, and no goroutine is left behind.
func TestReadNDJSONCancelled(t *testing.T) {
	before := runtime.NumGoroutine()
	pr, pw := io.Pipe()
	go func() {
		line := []byte(sampleJSON + "\n")
		for {
			if _, err := pw.Write(line); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{fail: func(call int) error {
		if call == 3 {
			cancel()
		}
		return nil
	}}
	st, err := ReadNDJSON(ctx, pr, rec, NDJSONOptions{BatchSize: 10})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadNDJSON() after cancel = %v, want context.Canceled", err)
	}
	if st.Events < 30 {
		t.Errorf("Stats.Events = %d, want the 3 accepted batches counted", st.Events)
	}
	pr.CloseWithError(errors.New("test over"))
	deadline := time.Now().Add(30 * time.Second) // a leak, not a busy machine
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after ReadNDJSON returned, %d before", n, before)
	}
}
