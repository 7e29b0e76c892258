package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate"
)

// newEvalCmd is `falco-scorer eval`: train the model on ADFA-LD-layout
// traces, calibrate on the training data alone, score normal and attack
// traces with the service's own scoring code, and report detection figures.
func newEvalCmd(g *globalFlags) *cobra.Command {
	cfg := evaluate.DefaultConfig()
	var train, normal, attack, capturePath, labelsPath string
	var asJSON, learnAsLabelled bool
	cmd := &cobra.Command{
		Use:   "eval --capture FILE --labels FILE | --train DIR --normal DIR --attack DIR",
		Short: "Measure detection on a recorded Falco capture, or the model on ADFA-LD-layout traces",
		Long: "With --capture and --labels, replays a recorded capture of Falco observations (a learning phase,\n" +
			"then normal traffic and attacks; see scorer/evaluate/lab) through the service's own pipeline with\n" +
			"the scorer section of --config, and reports detection beside a set-membership profile.\n" +
			"With --train, --normal and --attack, each file is one sequence of whitespace-separated system\n" +
			"calls; attack files live under attack/<Family_N>/. Thresholds come from held-out folds of\n" +
			"--train only, as in the service.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if capturePath != "" || labelsPath != "" {
				if capturePath == "" || labelsPath == "" {
					return errors.New("eval: --capture and --labels go together")
				}
				return runEvalCapture(cmd, g, capturePath, labelsPath, asJSON, learnAsLabelled)
			}
			if train == "" || normal == "" || attack == "" {
				return errors.New("eval: --capture and --labels, or --train, --normal and --attack, are required")
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			var sets [3][]evaluate.Trace
			for i, dir := range []string{train, normal, attack} {
				var err error
				if sets[i], err = evaluate.LoadDir(dir); err != nil {
					return fmt.Errorf("eval: %w", err)
				}
			}
			r, err := evaluate.Run(cmd.Context(), cfg, sets[0], sets[1], sets[2])
			if err != nil {
				return fmt.Errorf("eval: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			return printEval(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&train, "train", "", "directory of normal training traces")
	f.StringVar(&normal, "normal", "", "directory of normal test traces")
	f.StringVar(&attack, "attack", "", "directory of attack traces, one subdirectory per family run")
	f.StringVar(&capturePath, "capture", "", "recorded Falco capture (NDJSON, gzip allowed)")
	f.StringVar(&labelsPath, "labels", "", "the capture's labels.json")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.BoolVar(&learnAsLabelled, "learn-as-labelled", true, "with --capture: the scorer learns for at least 90% of the labelled learning phase, as set membership learns from all of it (unless the config sets scorer.learning_min_duration)")
	f.IntVar(&cfg.Model.Order, "order", cfg.Model.Order, "Markov order (n-gram length, 1-16)")
	f.StringVar(&cfg.SequenceScore, "sequence-score", cfg.SequenceScore, "end-of-sequence score: mean-surprise or excess-band (the former score)")
	f.StringVar(&cfg.Model.Smoothing, "smoothing", cfg.Model.Smoothing, "witten-bell or absolute-discount")
	f.Float64Var(&cfg.Model.Discount, "discount", cfg.Model.Discount, "discount for absolute-discount smoothing")
	f.IntVar(&cfg.Model.VocabSize, "vocab-size", cfg.Model.VocabSize, "vocabulary cap including the out-of-vocabulary symbol")
	f.IntVar(&cfg.WindowLength, "window", cfg.WindowLength, "online window length (events)")
	f.IntVar(&cfg.WindowWarmup, "window-warmup", cfg.WindowWarmup, "events before the (growing) online window may alert; at most --window")
	f.Float64Var(&cfg.BandLow, "band-low", cfg.BandLow, "excess-band sequence score: lower quantile of the averaged band")
	f.Float64Var(&cfg.BandHigh, "band-high", cfg.BandHigh, "excess-band sequence score: upper quantile of the averaged band")
	f.Float64Var(&cfg.Hysteresis, "hysteresis", cfg.Hysteresis, "online alarm re-arms below this fraction of the threshold")
	f.IntVar(&cfg.Folds, "folds", cfg.Folds, "calibration folds (contiguous blocks of --train)")
	return cmd
}

// writeJSON prints v as one indented JSON object (eval --json).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printEval(w io.Writer, r evaluate.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	c := r.Counts
	p("data\ttrain %d seq / %d events\tnormal %d / %d\tattack %d / %d", c.TrainSequences, c.TrainEvents,
		c.NormalSequences, c.NormalEvents, c.AttackSequences, c.AttackEvents)
	p("model\torder %d, %s\t%d transitions, %d symbols\t%.3f bits/normal event", r.Config.Order, r.Config.Smoothing,
		c.Transitions, c.Symbols, c.NormalBits)
	p("")
	p("score\tAUC\tTPR@FPR 0.01\tTPR@FPR 0.05\tTPR@FPR 0.10\tFPR@TPR 0.90")
	p("sequence\t%.4f\t%.3f\t%.3f\t%.3f\t%.3f", r.Sequence.AUC, r.Sequence.TPRAtFPR["0.01"],
		r.Sequence.TPRAtFPR["0.05"], r.Sequence.TPRAtFPR["0.10"], r.Sequence.FPRAtTPR)
	p("online (window %d)\t%.4f\t%.3f\t%.3f\t%.3f\t", r.Config.WindowLength, r.Online.AUC, r.Online.TPRAtFPR["0.01"],
		r.Online.TPRAtFPR["0.05"], r.Online.TPRAtFPR["0.10"])
	p("")
	p("family\tsequence AUC")
	for _, f := range r.Families() {
		p("%s\t%.4f", f, r.Sequence.PerFamily[f])
	}
	p("")
	p("calibrated target\tthreshold\tFPR (normal)\tTPR (attack)\tonline FPR\tonline TPR")
	for _, t := range evaluate.CalibrationTargets {
		k := fmt.Sprintf("%.2f", t)
		cal := r.Calibrated[k]
		p("%s\t%.3f\t%.4f\t%.3f\t%.4f\t%.3f", k, cal.Threshold, cal.FPR, cal.TPR, cal.OnlineFPR, cal.OnlineTPR)
	}
	p("")
	p("online alerts\t%.1f per million normal events\tmedian %.0f events to first alert\t%.3f of attacks alerted (threshold %.3f)",
		r.Online.AlertsPerMillion, r.Online.EventsToFirstAlertP50, r.Online.DetectedAttacks, r.Online.Threshold)
	p("")
	p("set membership\tAUC\tFPR@TPR 0.90\tnormal flagged\tattacks flagged")
	for _, s := range r.SetMembership {
		p("never-seen %s\t%.4f\t%.3f\t%.3f\t%.3f", s.Items, s.AUC, s.FPRAtTPR, s.FlaggedNormal, s.FlaggedAttack)
	}
	return tw.Flush()
}
