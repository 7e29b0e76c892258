package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/capture"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/store"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var dataDir string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on the bundled lab capture, no external services (under a minute)",
		Long: "demo starts falco-scorer in-process (HTTP ingest on a loopback port, Badger in a temporary\n" +
			"directory, the scorer, and stdout, webhook and Slack sinks pointed at in-process receivers), posts\n" +
			"the recorded lab capture to it the way Falco's http_output does (real nginx, redis, a Python API\n" +
			"and a cron worker, as the shipped rules emit them; see scorer/evaluate/lab), and narrates what\n" +
			"happens: baselines learning and graduating, attacks flagged and explained, Falco's own alerts\n" +
			"re-prioritized, false alarms counted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dataDir, verbose)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep the demo's Badger data here (default: a temporary directory, removed after)")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "also print the service's own log lines")
	return cmd
}

// demoConfig is the embedded configuration of the demo: the service's
// defaults, with sinks pointed at in-process receivers.
func demoConfig(dataDir, slackURL, webhookURL string) Config {
	cfg := DefaultConfig()
	cfg.Store.Dir = dataDir
	cfg.Store.MinFreeBytes = store.MinFreeFloor
	cfg.Inputs.HTTP.Listen = "127.0.0.1:0"
	cfg.Scorer.FlushInterval = time.Second
	cfg.Sinks.Stdout.Enabled = true
	cfg.Sinks.Slack.Enabled = true
	cfg.Sinks.Slack.WebhookURL = secret.New(slackURL)
	cfg.Sinks.Slack.MinInterval = 50 * time.Millisecond // the fake Slack has no rate limit; keep the demo short
	cfg.Sinks.Webhook.Enabled = true
	cfg.Sinks.Webhook.URL = secret.New(webhookURL)
	cfg.Delivery.PollInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 15 * time.Second
	return cfg
}

// demoReceivers stand in for Slack and for a falcosidekick behind the webhook.
type demoReceivers struct {
	slack, webhook *httptest.Server
	mu             sync.Mutex
	slackMsgs      [][]byte
	webhookPosts   int
}

func newDemoReceivers() *demoReceivers {
	r := &demoReceivers{}
	r.slack = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.slackMsgs = append(r.slackMsgs, b)
		r.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	r.webhook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.webhookPosts++
		r.mu.Unlock()
	}))
	return r
}

func (r *demoReceivers) Close() { r.slack.Close(); r.webhook.Close() }

// demoNarrator turns the stdout sink's alert lines into the demo's story.
type demoNarrator struct {
	out     io.Writer
	mu      sync.Mutex
	alerts  map[string]int // "kind priority" → count
	byPrio  map[scorer.Priority]int
	labels  *lab.Labels
	attack  int               // anomaly alerts on attack processes
	runs    map[*lab.Run]bool // attack runs flagged
	falseA  int               // anomaly alerts on normal processes (false alarms)
	drift   int               // of them, on labelled drift (rollout, maintenance, restarts)
	shownA  int               // attack alerts printed in full
	shownF  int               // false alarms printed in full
	partial []byte
	grads   []string // images whose baseline graduated, in order
}

func (n *demoNarrator) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partial = append(n.partial, p...)
	for {
		i := bytes.IndexByte(n.partial, '\n')
		if i < 0 {
			break
		}
		n.alert(n.partial[:i])
		n.partial = n.partial[i+1:]
	}
	return len(p), nil
}

func (n *demoNarrator) alert(line []byte) {
	var a scorer.Alert
	if err := json.Unmarshal(line, &a); err != nil {
		fmt.Fprintf(n.out, "  ! unreadable alert: %v\n", err)
		return
	}
	n.alerts[a.Kind]++
	n.byPrio[a.Priority]++
	switch a.Kind {
	case scorer.KindFalco:
		verdict := a.Score.Verdict
		change := fmt.Sprintf("%s (unchanged)", a.Priority)
		if a.Priority != a.Event.Priority {
			change = fmt.Sprintf("%s → %s", a.Event.Priority, a.Priority)
		}
		fmt.Fprintf(n.out, "\n  ⚑ Falco alert %q in %s (%s/%s)\n    priority %s; container is %s", a.Event.Rule,
			a.Subject.Image, a.Subject.Namespace, a.Subject.Pod, change, verdict)
		if verdict == scorer.VerdictAnomalous {
			fmt.Fprintf(n.out, " (score %.2f, %.1f× its image's threshold, band %s)", a.Score.Value, a.Score.Ratio, a.Score.Band)
		}
		fmt.Fprintln(n.out)
	default:
		run := n.labels.Lookup(a.Subject.ContainerID, int(a.Subject.PID), a.Time)
		what := "behaviour anomaly"
		if a.Kind == scorer.KindEnd {
			what = "anomalous process (whole trace)"
		}
		full := false
		switch {
		case run != nil && run.Kind == lab.KindAttack:
			n.attack++
			n.runs[run] = true
			full = n.shownA < demoShownInFull
			n.shownA++
			what += fmt.Sprintf(" — attack %s (%s)", run.Run, run.Note)
		default:
			n.falseA++
			label := "normal process"
			if run != nil {
				n.drift++
				label = fmt.Sprintf("drift: %s, %s", run.Scenario, run.Note)
			}
			full = n.shownF < demoShownInFull
			n.shownF++
			what += " — FALSE ALARM (" + label + ")"
		}
		tree := ""
		if strings.HasPrefix(a.Reason, pipeline.TreeReasonPrefix) {
			tree = " (judged with its process tree)"
		}
		if !full {
			fmt.Fprintf(n.out, "  ✱ %s, %s in %s, process %s pid %d%s, score %.1f\n", a.Priority, what,
				shortImage(a.Subject.Image), a.Subject.Process, a.Subject.PID, tree, a.Score.Value)
			return
		}
		fmt.Fprintf(n.out, "\n  ✱ %s, priority %s, in %s (%s/%s), process %s pid %d\n", what, a.Priority,
			a.Subject.Image, a.Subject.Namespace, a.Subject.Pod, a.Subject.Process, a.Subject.PID)
		fmt.Fprintf(n.out, "    %s\n", a.Reason)
		fmt.Fprintf(n.out, "    score %.1f bits vs threshold %.1f (%.1f×, band %s); baseline %s, %d events, %d transitions\n",
			a.Score.Value, a.Score.Threshold, a.Score.Ratio, a.Score.Band, a.Baseline.State, a.Baseline.Events, a.Baseline.Transitions)
		if a.Explain != nil {
			fmt.Fprintf(n.out, "    least likely steps (readable symbols: what Falco sent, abstracted):\n")
			for _, t := range a.Explain.Transitions {
				h := t.History
				if len(h) > 2 {
					h = append([]string{"…"}, h[len(h)-2:]...)
				}
				fmt.Fprintf(n.out, "      after %-60s → %-34s p=%.2g (history seen %d×)\n",
					strings.Join(h, " · "), t.Symbol, t.Probability, t.HistorySeen)
			}
		}
	}
}

// demoShownInFull: alerts of each kind (attack, false alarm) printed with
// their explanation; the rest get one line.
const demoShownInFull = 3

func runDemo(ctx context.Context, w io.Writer, dataDir string, verbose bool) error {
	start := time.Now()
	out := &lockedWriter{w: w} // the narrator, the log and the progress lines all print
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "falco-scorer-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}
	recv := newDemoReceivers()
	defer recv.Close()
	cfg := demoConfig(dataDir, recv.slack.URL, recv.webhook.URL)

	labels, err := lab.CommittedLabels()
	if err != nil {
		return err
	}
	// The recorded learning phase stands in for a day of routine: the
	// baselines learn through it, as learning_min_duration has them do
	// in production, and as the lab's evaluation does.
	capture.LearnAsLabelled(&cfg.Scorer, labels)
	narr := &demoNarrator{out: out, alerts: map[string]int{}, byPrio: map[scorer.Priority]int{},
		labels: labels, runs: map[*lab.Run]bool{}}
	logs := &demoLog{narr: narr}
	if verbose {
		logs.echo = os.Stderr
	}
	log, err := newLogger(logs, "json", "info")
	if err != nil {
		return err
	}
	svc, err := newService(cfg, log, narr, onGraduated(narr.graduated))
	if err != nil {
		return err
	}

	events, err := decodeCapture(lab.CommittedCapture())
	if err != nil {
		return fmt.Errorf("demo capture: %w", err)
	}
	events = withFalcoAlerts(events, labels)
	attackRuns := 0
	for _, r := range labels.Runs {
		if r.Kind == lab.KindAttack {
			attackRuns++
		}
	}
	fmt.Fprintf(out, "falco-scorer demo: %d Falco events from %d images, recorded in the lab (scorer/evaluate/lab):\n", len(events), len(labels.Images))
	fmt.Fprintf(out, "  %s of learning (normal traffic only), then %s of normal traffic, drift and %d attack runs\n",
		labels.TestStart.Sub(labels.LearnStart).Round(time.Second), labels.End.Sub(labels.TestStart).Round(time.Second), attackRuns)
	fmt.Fprintf(out, "service: HTTP ingest on loopback, Badger in %s, sinks stdout + webhook + Slack (in-process receivers)\n", dataDir)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var posted atomic.Int64
	var feedErr error
	runErr := svc.run(ctx, func(ctx context.Context) {
		feedErr = postCapture(ctx, out, "http://"+svc.httpAddr()+"/", events, &posted, narr)
		// Let the last alerts travel through the outbox before the summary.
		svc.flushOutbox(time.Now().Add(5 * time.Second))
	})
	if err := errors.Join(feedErr, runErr); err != nil {
		return err
	}
	narr.mu.Lock()
	defer narr.mu.Unlock()
	recv.mu.Lock()
	defer recv.mu.Unlock()
	fmt.Fprintf(out, "\nsummary after %s\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(out, "  events posted and acknowledged: %d\n", posted.Load())
	fmt.Fprintf(out, "  alerts: %d Falco alerts forwarded, %d behaviour anomalies, %d anomalous processes\n",
		narr.alerts[scorer.KindFalco], narr.alerts[scorer.KindAnomaly], narr.alerts[scorer.KindEnd])
	var prios []string
	keys := make([]int, 0, len(narr.byPrio))
	for p := range narr.byPrio {
		keys = append(keys, int(p))
	}
	sort.Ints(keys)
	for _, p := range keys {
		prios = append(prios, fmt.Sprintf("%s %d", scorer.Priority(p), narr.byPrio[scorer.Priority(p)]))
	}
	fmt.Fprintf(out, "  alerts by priority: %s\n", strings.Join(prios, ", "))
	slackAnomalies := 0
	for _, m := range recv.slackMsgs {
		var msg struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(m, &msg) == nil && strings.Contains(msg.Text, "behaviour anomaly") {
			slackAnomalies++
		}
	}
	fmt.Fprintf(out, "  delivered: Slack %d messages (Block Kit, %d of them on behaviour anomalies), webhook %d Falco-format posts\n",
		len(recv.slackMsgs), slackAnomalies, recv.webhookPosts)
	fmt.Fprintf(out, "  anomaly alerts on normal processes (false alarms): %d, %d of them on labelled drift\n", narr.falseA, narr.drift)
	fmt.Fprintf(out, "  attack runs flagged: %d of %d (%d anomaly alerts on attack processes)\n", len(narr.runs), attackRuns, narr.attack)
	if len(narr.runs) == 0 {
		return errors.New("demo: no attack run was flagged")
	}
	return nil
}

// withFalcoAlerts adds Falco's own alerts where Falco's default rules would
// fire during the lab's attacks (a shell in a container for a reverse shell,
// a sensitive file read for a credential read), right after the run's first
// event, so that the demo shows them forwarded and re-prioritized by the
// container's anomaly state.
func withFalcoAlerts(events [][]byte, labels *lab.Labels) [][]byte {
	rules := map[string]struct{ rule, prio, tag string }{
		"reverse-shell":   {"Terminal shell in container", "Notice", "mitre_execution"},
		"credential-read": {"Read sensitive file untrusted", "Warning", "mitre_credential_access"},
	}
	pending := map[*lab.Run]bool{}
	for i := range labels.Runs {
		if _, ok := rules[labels.Runs[i].Scenario]; ok && labels.Runs[i].Kind == lab.KindAttack {
			pending[&labels.Runs[i]] = true
		}
	}
	out := make([][]byte, 0, len(events)+len(pending))
	for _, line := range events {
		out = append(out, line)
		if len(pending) == 0 {
			continue
		}
		var ev struct {
			Time   time.Time      `json:"time"`
			Fields map[string]any `json:"output_fields"`
		}
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		cid, _ := ev.Fields["container.id"].(string)
		pid, _ := ev.Fields["proc.pid"].(float64)
		run := labels.Lookup(cid, int(pid), ev.Time)
		if run == nil || !pending[run] {
			continue
		}
		delete(pending, run)
		r := rules[run.Scenario]
		fields := map[string]any{}
		for _, k := range []string{"container.id", "container.name", "container.image.repository", "container.image.tag",
			"container.image.digest", "k8s.ns.name", "k8s.pod.name", "proc.name", "proc.pid", "proc.ppid", "proc.pname",
			"proc.exepath", "proc.cmdline", "user.name", "user.uid", "evt.type"} {
			if v, ok := ev.Fields[k]; ok {
				fields[k] = v
			}
		}
		alert, _ := json.Marshal(map[string]any{
			"time": ev.Time.Add(time.Millisecond).Format(time.RFC3339Nano), "rule": r.rule, "priority": r.prio,
			"source": "syscall", "hostname": "lab-vm", "tags": []string{"container", r.tag},
			"output":        fmt.Sprintf("%s (container_id=%s proc=%v)", r.rule, cid, fields["proc.name"]),
			"output_fields": fields,
		})
		out = append(out, alert)
	}
	return out
}

// decodeCapture splits the gzip NDJSON capture into lines.
func decodeCapture(gz []byte) ([][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	var lines [][]byte
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	return lines, sc.Err()
}

// postCapture posts the events in NDJSON batches, printing progress and the
// baselines' states as they change.
func postCapture(ctx context.Context, out io.Writer, url string, events [][]byte, posted *atomic.Int64, narr *demoNarrator) error {
	const batch = 200
	client := &http.Client{Timeout: 30 * time.Second}
	lastReport := time.Now()
	for i := 0; i < len(events); i += batch {
		j := min(i+batch, len(events))
		body := bytes.Join(events[i:j], []byte("\n"))
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("post batch: %w", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				time.Sleep(20 * time.Millisecond) // the scorer is busy: back off, as a well-behaved sender does
				continue
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("post batch: HTTP %d", resp.StatusCode)
			}
			break
		}
		posted.Add(int64(j - i))
		if time.Since(lastReport) > 700*time.Millisecond || j == len(events) {
			lastReport = time.Now()
			reportStates(out, narr, j, len(events))
		}
	}
	return nil
}

func reportStates(out io.Writer, narr *demoNarrator, done, total int) {
	narr.mu.Lock()
	defer narr.mu.Unlock()
	mon := "none yet"
	if len(narr.grads) > 0 {
		mon = strings.Join(narr.grads, ", ")
	}
	fmt.Fprintf(out, "  [%3d%%] %d/%d events · monitoring: %s\n", done*100/total, done, total, mon)
}

func shortImage(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '@'); i >= 0 && len(s) > i+12 {
		s = s[:i+12] + "…"
	}
	return s
}

// lockedWriter serialises writes from the demo's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// graduated narrates a baseline leaving learning (the pipeline's
// OnGraduated hook; workers call it in parallel).
func (n *demoNarrator) graduated(g pipeline.Graduated) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.grads = append(n.grads, shortImage(g.Image))
	fmt.Fprintf(n.out, "\n  ✓ baseline of %s graduated: learning → monitoring after %d events (threshold %.2f)\n",
		g.Image, g.Events, g.Threshold)
}

// demoLog prints the service's warnings and errors; with --verbose it
// echoes every log line.
type demoLog struct {
	narr *demoNarrator
	echo io.Writer
}

func (l *demoLog) Write(p []byte) (int, error) {
	if l.echo != nil {
		l.echo.Write(p)
	}
	var rec struct {
		Level   string `json:"level"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(p, &rec) != nil || rec.Level != "error" && rec.Level != "warn" {
		return len(p), nil
	}
	l.narr.mu.Lock()
	defer l.narr.mu.Unlock()
	fmt.Fprintf(l.narr.out, "  ! %s %s %s\n", rec.Level, rec.Message, rec.Error)
	return len(p), nil
}
