// Command falco-lab records the falco-scorer lab: real programs (Debian's
// nginx and redis-server, a Python web API with worker processes, a cron-style
// shell worker) run under strace, driven with normal traffic, then attacked
// from inside their process trees; and it converts the traces into Falco JSON
// exactly as the shipped observation rules would emit them.
//
//	falco-lab record  -raw DIR   (root, strace, nginx, redis-server, python3)
//	falco-lab convert -raw DIR -out DIR
//
// `make lab` runs both and writes scorer/evaluate/lab/testdata. See
// scorer/evaluate/lab/README.md for what runs and what is synthetic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "falco-lab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: falco-lab record|convert [flags]")
	}
	switch args[0] {
	case "record":
		cfg := defaultRecordConfig()
		fs := flag.NewFlagSet("record", flag.ContinueOnError)
		fs.StringVar(&cfg.Raw, "raw", cfg.Raw, "directory for the raw strace files and manifest.json (emptied first)")
		fs.StringVar(&cfg.Root, "root", cfg.Root, "lab root: service data, configs and the fake rootfs (emptied first)")
		fs.DurationVar(&cfg.Learn, "learn", cfg.Learn, "length of the learning phase (normal traffic only)")
		fs.DurationVar(&cfg.Test, "test", cfg.Test, "length of the test phase (normal traffic, drift and attacks)")
		fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the traffic and schedule randomness")
		fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "load driver requests per second (approximate)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return record(ctx, cfg)
	case "convert":
		fs := flag.NewFlagSet("convert", flag.ContinueOnError)
		raw := fs.String("raw", "/var/tmp/falco-lab/raw", "directory written by record")
		out := fs.String("out", "scorer/evaluate/lab/testdata", "directory for capture.ndjson.gz, labels.json and summary.json")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return convert(*raw, *out)
	default:
		return fmt.Errorf("unknown subcommand %q (want record or convert)", args[0])
	}
}
