// Command falco-scorer runs beside Falco: it ingests Falco's events, scores
// them against per-image baselines of system-call behaviour and forwards
// prioritized, explained alerts. See the README for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "falco-scorer:", err)
		os.Exit(1)
	}
}

// globalFlags are shared by every subcommand.
type globalFlags struct {
	configPath   string
	logFormat    string
	logLevel     string
	cpuProfile   string // hidden: profile a run (benchmarks), written when the command returns nil
	allocProfile string // hidden: allocations of a run, likewise
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "falco-scorer",
		Short:         "Anomaly scoring for Falco events: is this unusual for this image?",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "YAML configuration file (defaults apply without one)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: json or console (overrides log.format)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to FILE")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentFlags().StringVar(&g.allocProfile, "allocprofile", "", "write the allocations of the command (pprof allocs) to FILE when it ends")
	_ = root.PersistentFlags().MarkHidden("allocprofile")
	var profile *os.File
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		profile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRunE = func(*cobra.Command, []string) error {
		if g.allocProfile != "" {
			f, err := os.Create(g.allocProfile)
			if err != nil {
				return fmt.Errorf("allocprofile: %w", err)
			}
			if err := errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close()); err != nil {
				return fmt.Errorf("allocprofile: %w", err)
			}
		}
		if profile == nil {
			return nil
		}
		pprof.StopCPUProfile()
		return profile.Close()
	}
	root.AddCommand(
		newServeCmd(g),
		newReplayCmd(g),
		newVersionCmd(),
		newConfigCmd(g),
		newEvalCmd(g),
		newDemoCmd(g),
	)
	addBaselinesCmd(root, g)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the module version and the VCS revision it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, _ := debug.ReadBuildInfo()
			fmt.Fprint(cmd.OutOrStdout(), versionText(version, bi))
			return nil
		},
	}
}

// versionText says what a binary is: the release tag set with -ldflags
// (make build, make image, the release workflow), then what the Go
// toolchain recorded, so that a binary built without the tag (go install
// module@version, go build in a checkout) still names its module version and
// commit, and a build from a modified tree says so ("dirty").
func versionText(tag string, bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "falco-scorer %s\n", tag)
	if bi == nil {
		b.WriteString("build info: not available\n")
		return b.String()
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	mod := bi.Main.Version
	if mod == "" {
		mod = "(unknown)"
	}
	fmt.Fprintf(&b, "module:   %s %s\n", bi.Main.Path, mod)
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = "(unknown)"
	}
	fmt.Fprintf(&b, "revision: %s\n", rev)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "time:     %s\n", t)
	}
	dirty := "unknown"
	if m, ok := settings["vcs.modified"]; ok {
		dirty = m
	}
	fmt.Fprintf(&b, "dirty:    %s\n", dirty)
	fmt.Fprintf(&b, "go:       %s %s/%s\n", bi.GoVersion, settings["GOOS"], settings["GOARCH"])
	return b.String()
}

// newLogger builds the root logger: JSON by default, console for people.
func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		if level != "" {
			return zerolog.Logger{}, fmt.Errorf("log.level: unknown level %q", level)
		}
		lvl = zerolog.InfoLevel
	}
	switch format {
	case "", "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Logger{}, fmt.Errorf("log.format: %q, want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
