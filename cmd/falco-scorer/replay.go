package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/scorer/source"
)

func newReplayCmd(g *globalFlags) *cobra.Command {
	var stopOnError bool
	cmd := &cobra.Command{
		Use:   "replay FILE|-",
		Short: "Feed Falco JSON lines (file_output, program_output or a capture) through the pipeline",
		Long: "replay reads NDJSON Falco events from FILE (or standard input with -; gzip is detected) and\n" +
			"runs them through the same scorer, baselines, outbox and sinks as the service, then drains and\n" +
			"exits. The HTTP and gRPC inputs are not started. Events are not journaled: the file is the\n" +
			"durable record, and replaying it again after a crash gives alerts with the same ids.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := setup(g, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.Inputs.HTTP.Enabled = false
			cfg.Inputs.GRPC.Enabled = false
			cfg.Admin.Listen = "" // a service running beside may hold it; replay serves nothing
			var in io.Reader = cmd.InOrStdin()
			var size int64 = -1
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				in = f
			}
			counted := &countingReader{r: in}
			in, err = maybeGunzip(counted)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			svc, err := newService(cfg, log, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				bar = progressbar.DefaultBytes(size, "replaying")
			}
			start := time.Now()
			st, err := svc.runWith(cmd.Context(), func(ctx context.Context) (source.Stats, error) {
				return source.ReadNDJSON(ctx, in, unjournaled{svc.pipe}, source.NDJSONOptions{
					StopOnError: stopOnError,
					Progress: func(int64) {
						if bar != nil {
							bar.Set64(counted.n.Load())
						}
					},
				})
			})
			if bar != nil {
				bar.Finish()
			}
			took := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "replayed %d events (%d bad lines) in %s, scored and delivered: %.0f events/s\n",
				st.Events, st.Bad, took.Round(time.Millisecond), float64(st.Events)/took.Seconds())
			for _, le := range st.Errors {
				fmt.Fprintf(cmd.ErrOrStderr(), "  %v\n", le)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&stopOnError, "stop-on-error", false, "stop at the first line that is not a Falco event")
	return cmd
}

// countingReader counts the bytes read from the file (compressed bytes for
// a gzip capture), which is what the progress bar measures against.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// maybeGunzip decompresses gzip input (captures are often stored .gz) and
// passes anything else through.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// unjournaled feeds the pipeline without the journal: the file being
// replayed is itself the durable record (after a crash, replay it again;
// alert ids are stable, so consumers can drop the duplicates).
type unjournaled struct{ p *pipeline.Pipeline }

func (u unjournaled) Accept(ctx context.Context, source string, events []scorer.Event) error {
	return u.p.AcceptUnjournaled(ctx, source, events)
}
