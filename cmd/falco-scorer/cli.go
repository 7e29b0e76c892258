package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/store/admin"
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
	order := pipeline.DefaultConfig().Order
	cmd := newBaselinesCmdWith(&dir, func(image string, meta []byte, buckets []scorer.BaselineBucket) any {
		return describeBaseline(order)(image, meta, buckets)
	})
	cmd.PersistentFlags().StringVar(&dir, "data-dir", "", "data directory (default: the configuration's store.dir)")
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		cfg, err := LoadConfig(g.configPath)
		if err != nil {
			return err
		}
		order = cfg.Scorer.Order
		if dir == "" {
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
// API: state, thresholds, size, maturity and the most frequent transitions,
// from the stored meta and counts of a model of the given order.
func describeBaseline(order int) admin.DescribeFunc {
	return func(image string, meta []byte, buckets []scorer.BaselineBucket) any {
		return describe(order, meta, buckets)
	}
}

func describe(order int, meta []byte, buckets []scorer.BaselineBucket) any {
	out := map[string]any{} // the baseline's meta is beside it (admin.ShowView.Baseline)
	var model *markov.Model
	for _, b := range buckets {
		var d markov.Delta
		if err := d.UnmarshalBinary(b.Counts); err != nil {
			out["error"] = fmt.Sprintf("bucket %s: %v", b.Bucket, err)
			return out
		}
		if model == nil {
			mc := markov.DefaultConfig()
			mc.Order = order
			m, err := markov.New(mc)
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
		var top []map[string]any
		for _, tr := range model.TopTransitions(10) {
			hist := make([]string, len(tr.History))
			for i, s := range tr.History {
				hist[i] = model.Name(s)
			}
			top = append(top, map[string]any{
				"history": hist, "symbol": model.Name(tr.Symbol), "count": tr.Count, "probability": tr.Probability,
			})
		}
		out["top_transitions"] = top
	}
	return out
}
