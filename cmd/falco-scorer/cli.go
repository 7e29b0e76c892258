package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or print the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file: unknown keys, bad values and missing fields are named",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := LoadConfig(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (sinks: %v)\n", args[0], cfg.enabledSinks())
			return nil
		},
	}, &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, or --config over them); secrets are redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := LoadConfig(g.configPath)
			if err != nil {
				return err
			}
			b, err := yaml.Marshal(cfg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return cmd
}

// addBaselinesCmd adds `baselines` working on the configured data dir.
func addBaselinesCmd(root *cobra.Command, g *globalFlags) {
	dir := ""
	cmd := newBaselinesCmdWith(&dir, describeBaseline)
	cmd.PersistentFlags().StringVar(&dir, "data-dir", "", "data directory (default: the configuration's store.dir)")
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if dir == "" {
			cfg, err := LoadConfig(g.configPath)
			if err != nil {
				return err
			}
			dir = cfg.Store.Dir
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	root.AddCommand(cmd)
}

// describeBaseline adds the model's view to `baselines show` and the admin
// API: state, thresholds, size and maturity from the stored meta and counts.
func describeBaseline(image string, meta []byte, buckets []scorer.BaselineBucket) any {
	out := map[string]any{}
	if m := scorer.DescribeMeta(meta); m != nil {
		out["baseline"] = m
	}
	var model *markov.Model
	for _, b := range buckets {
		var d markov.Delta
		if err := d.UnmarshalBinary(b.Counts); err != nil {
			out["error"] = fmt.Sprintf("bucket %s: %v", b.Bucket, err)
			return out
		}
		if model == nil {
			m, err := markov.New(markov.DefaultConfig())
			if err != nil {
				return out
			}
			model = m
		}
		if err := model.Apply(d, +1); err != nil {
			out["warning"] = err.Error()
		}
	}
	if model != nil {
		out["model"] = model.Stats()
	}
	return out
}
