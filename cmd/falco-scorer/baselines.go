package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/store"
	"github.com/falco-scorer/falco-scorer/store/admin"
)

// newBaselinesCmdWith is `falco-scorer baselines`: list, show, export,
// import and reset baselines in the data directory of a stopped service (a
// running one holds the directory lock; use its admin API instead).
// describe, when not nil, adds model details (top transitions, threshold)
// to `show`.
func newBaselinesCmdWith(dataDir *string, describe admin.DescribeFunc) *cobra.Command {
	root := &cobra.Command{
		Use:   "baselines",
		Short: "Inspect, export, import and reset per-image baselines (service stopped)",
		Long: "Works on the data directory of a stopped falco-scorer. While the service runs, Badger's\n" +
			"directory lock refuses a second process: use the admin API (/api/v1/baselines) instead.\n" +
			"list, show and export open the store read-only and write nothing; import and reset write.",
	}
	b := &baselinesCLI{dataDir: dataDir, describe: describe}
	root.AddCommand(b.list(), b.show(), b.export(), b.importCmd(), b.reset())
	return root
}

// baselinesCLI builds the `baselines` subcommands over one data directory.
type baselinesCLI struct {
	dataDir  *string
	describe admin.DescribeFunc
}

// storeFunc is a subcommand's work on the opened store.
type storeFunc func(cmd *cobra.Command, db *store.DB, args []string) error

// open opens the store read-write for import and reset, and read-only for
// list, show and export, which then write nothing to the data directory
// (no journal segments, no Badger flush) and can run beside each other.
func (b *baselinesCLI) open(readOnly bool) (*store.DB, error) {
	cfg := store.DefaultConfig()
	cfg.Dir = *b.dataDir
	if _, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	if !readOnly {
		return store.Open(cfg, log, nil)
	}
	db, err := store.OpenReadOnly(cfg.Dir, log)
	if !errors.Is(err, store.ErrNeedsRecovery) {
		return db, err
	}
	// A killed service left the store to recover: do what its next start
	// would do (Badger truncates its unfinished log; journal entries stay
	// for the service to replay), then read.
	fmt.Fprintln(os.Stderr, "falco-scorer: the store was not closed cleanly (a killed service): recovering it, as the service's next start would, before reading")
	rw, err := store.Open(cfg, log, nil)
	if err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	if err := rw.Close(); err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	return store.OpenReadOnly(cfg.Dir, log)
}

func (b *baselinesCLI) with(readOnly bool, fn storeFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) (err error) {
		db, err := b.open(readOnly)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, db.Close()) }()
		return fn(cmd, db, args)
	}
}

func (b *baselinesCLI) reading(fn storeFunc) func(*cobra.Command, []string) error {
	return b.with(true, fn)
}

func (b *baselinesCLI) writing(fn storeFunc) func(*cobra.Command, []string) error {
	return b.with(false, fn)
}

func (b *baselinesCLI) list() *cobra.Command {
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List stored images",
		Args:  cobra.NoArgs,
		RunE: b.reading(func(cmd *cobra.Command, db *store.DB, _ []string) error {
			infos, err := db.Images()
			if err != nil {
				return err
			}
			views := admin.List(infos)
			out := cmd.OutOrStdout()
			if asJSON {
				return writeIndented(out, views)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tSTATE\tEVENTS\tPROGRESS / THRESHOLD\tGRADUATED\tLAST SEEN")
			for _, v := range views {
				bl := v.Baseline
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Image, orDashAny(bl["state"]), orDashAny(bl["learned_events"]),
					progressText(bl), fmtAnyTime(bl["graduated"]), fmtTime(v.LastSeen))
			}
			return tw.Flush()
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return list
}

func (b *baselinesCLI) show() *cobra.Command {
	return &cobra.Command{
		Use:   "show IMAGE",
		Short: "Show one image's baseline as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: b.reading(func(cmd *cobra.Command, db *store.DB, args []string) error {
			info, buckets, err := db.Image(args[0])
			if err != nil {
				return err
			}
			return writeIndented(cmd.OutOrStdout(), admin.Show(info, buckets, b.describe))
		}),
	}
}

func (b *baselinesCLI) export() *cobra.Command {
	return &cobra.Command{
		Use:   "export [IMAGE...] FILE",
		Short: "Export images (all when none named) to a versioned JSON-lines file (- for stdout)",
		Args:  cobra.MinimumNArgs(1),
		RunE: b.reading(func(cmd *cobra.Command, db *store.DB, args []string) error {
			file, images := args[len(args)-1], args[:len(args)-1]
			if file == "-" {
				_, err := db.Export(cmd.OutOrStdout(), images...)
				return err
			}
			n, err := writeFileAtomic(file, func(w io.Writer) (int, error) { return db.Export(w, images...) })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d images to %s\n", n, file)
			return nil
		}),
	}
}

func (b *baselinesCLI) importCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Import an export file (- for stdin); imported images replace stored ones",
		Args:  cobra.ExactArgs(1),
		RunE: b.writing(func(cmd *cobra.Command, db *store.DB, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			images, err := db.Import(r, store.ImportLimits{})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %d images\n", len(images))
			return nil
		}),
	}
}

func (b *baselinesCLI) reset() *cobra.Command {
	return &cobra.Command{
		Use:   "reset IMAGE",
		Short: "Delete one image's baseline",
		Args:  cobra.ExactArgs(1),
		RunE: b.writing(func(cmd *cobra.Command, db *store.DB, args []string) error {
			ok, err := db.ResetImage(args[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("image %q: %w", args[0], store.ErrNotFound)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "reset %s\n", args[0])
			return nil
		}),
	}
}

// progressText is a learning baseline's progress towards graduation, or a
// monitoring one's thresholds.
func progressText(b map[string]any) string {
	if b == nil {
		return "-"
	}
	if b["state"] == scorer.StateMonitoring {
		t := "threshold " + fmtNum(b["threshold"])
		if e := b["end_threshold"]; e != nil {
			t += ", end " + fmtNum(e)
		}
		return t
	}
	g, _ := b["graduation"].(map[string]any)
	if g == nil {
		return "-"
	}
	return fmt.Sprintf("learning: %v of %v converged blocks (%v/%v events in this one), %v calibration scores",
		g["converged_blocks"], g["blocks_needed"], g["events_in_block"], g["block_events"], b["calibration_samples"])
}

func fmtNum(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
	return "-"
}

func orDashAny(v any) string {
	if v == nil || v == "" {
		return "-"
	}
	return fmt.Sprint(v)
}

func fmtAnyTime(v any) string {
	if t, ok := v.(time.Time); ok {
		return fmtTime(t)
	}
	return "-"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeFileAtomic writes through a temporary file in the same directory and
// renames it into place, so a failed export never leaves a truncated file.
func writeFileAtomic(path string, write func(io.Writer) (int, error)) (n int, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if n, err = write(f); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, err
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	return n, os.Rename(f.Name(), path)
}
