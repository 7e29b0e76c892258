package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate/capture"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
)

// runEvalCapture is `eval --capture FILE --labels FILE`: the service's own
// pipeline, with the scorer section of the configuration (--config), over
// a recorded Falco capture, beside a set-membership profile.
func runEvalCapture(cmd *cobra.Command, g *globalFlags, capturePath, labelsPath string, asJSON, learnAsLabelled bool) error {
	cfg, log, err := setup(g, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if g.logLevel == "" {
		log = log.Level(zerolog.WarnLevel) // warn: the pipeline's info lines would bury the report
	}
	labels, err := lab.LoadLabels(labelsPath)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	f, err := os.Open(capturePath)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	in, err := maybeGunzip(f)
	if err != nil {
		return fmt.Errorf("eval: %s: %w", capturePath, err)
	}
	if learnAsLabelled {
		capture.LearnAsLabelled(&cfg.Scorer, labels)
	}
	r, err := capture.Run(cmd.Context(), cfg.Scorer, in, labels, log)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), r)
	}
	return printCaptureEval(cmd.OutOrStdout(), r)
}

func printCaptureEval(w io.Writer, r *capture.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("capture\t%d events (%d learning, %d test, %d bad lines)\ttest phase %.2f h", r.Events, r.LearnEvents, r.TestEvents, r.BadLines, r.TestHours)
	o := r.Overall
	p("processes\tnormal %d (drift %d)\tattack %d in %d runs", o.Scorer.NormalProcesses, o.Scorer.DriftProcesses, o.Scorer.AttackProcesses, o.Scorer.AttackRuns)
	p("scorer learns\tat least %s of event time (learning_min_duration)", r.LearningMinDuration)
	p("learning phase\t%d processes, %d alerted after their image graduated (false alarms, not in the figures below)", r.LearnProcesses, r.LearnAlerted)
	if len(o.Scorer.Learning) > 0 {
		p("still learning at test\t%s", strings.Join(o.Scorer.Learning, ", "))
	}
	p("")
	p("detector\tAUC\truns detected\tnormal alerted\tdrift alerted\talerts attack / normal\tfalse alerts/image/h\tevents to 1st alert\truns @0.1%%\truns @1%%")
	row := func(name string, f capture.Figures) {
		p("%s\t%s\t%d/%d (%.1f%%)\t%d (%.2f%%)\t%d/%d\t%d / %d\t%.1f\t%s\t%s\t%s", name, num(f.ProcessAUC, "%.3f"),
			f.RunsDetected, f.AttackRuns, 100*f.RunDetection, f.NormalAlerted, 100*f.FalseAlarmRate,
			f.DriftAlerted, f.DriftProcesses, f.AttackAlerts, f.FalseAlerts, f.FalseAlertsPerHour,
			num(f.MedianEventsToAlert, "%.0f"), budgetCell(f, 0), budgetCell(f, 1))
	}
	row("sequence scorer (as deployed)", o.Scorer)
	row("set membership", o.SetMembership)
	b := o.ScorerAtSetRate
	p("scorer at set membership's rate\t\t%d/%d (%.1f%%)\t%.2f%%", b.RunsDetected, o.Scorer.AttackRuns, 100*b.RunDetection, 100*b.NormalRate)
	p("")
	p("image\tstate at test\tevents\tmodel\tAUC scorer / set\truns scorer / set\tnormal alerted scorer / set")
	for _, im := range r.Images {
		s, m := im.Comparison.Scorer, im.Comparison.SetMembership
		p("%s\t%s\t%d\t%d KiB, %d transitions\t%s / %s\t%d / %d of %d\t%d / %d of %d", im.Image, im.State, im.Events,
			im.ModelBytes>>10, im.Transitions,
			num(s.ProcessAUC, "%.3f"), num(m.ProcessAUC, "%.3f"), s.RunsDetected, m.RunsDetected, s.AttackRuns,
			s.NormalAlerted, m.NormalAlerted, s.NormalProcesses)
	}
	p("")
	p("scenario\truns\tscorer\tset membership")
	for _, s := range r.Scenarios {
		p("%s\t%d\t%d\t%d", s.Scenario, s.Runs, s.Scorer, s.SetMember)
	}
	return tw.Flush()
}

func num(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

func budgetCell(f capture.Figures, i int) string {
	if i >= len(f.AtBudget) {
		return "-"
	}
	b := f.AtBudget[i]
	return fmt.Sprintf("%d/%d", b.RunsDetected, f.AttackRuns)
}
