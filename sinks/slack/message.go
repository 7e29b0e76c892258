package slack

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// Slack's Block Kit limits.
const (
	maxBlocks      = 50
	maxSectionText = 3000
	maxFieldText   = 2000
	maxFields      = 10
	truncMarker    = "… (truncated)"
)

// message is the JSON body for an incoming webhook or chat.postMessage.
type message struct {
	Channel     string       `json:"channel,omitempty"`
	ThreadTS    string       `json:"thread_ts,omitempty"`
	Text        string       `json:"text"` // notification fallback
	Attachments []attachment `json:"attachments"`
}

// attachment carries the priority colour; the content is in its blocks.
type attachment struct {
	Color  string  `json:"color"`
	Blocks []block `json:"blocks"`
}

type block struct {
	Type     string `json:"type"`
	Text     *text  `json:"text,omitempty"`
	Fields   []text `json:"fields,omitempty"`
	Elements []text `json:"elements,omitempty"`
}

type text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func mrkdwn(s string, limit int) text { return text{Type: "mrkdwn", Text: truncate(s, limit)} }

func section(s string) block {
	t := mrkdwn(s, maxSectionText)
	return block{Type: "section", Text: &t}
}

func contextBlock(s string) block {
	return block{Type: "context", Elements: []text{mrkdwn(s, maxSectionText)}}
}

// colour maps a priority to the attachment's side bar.
func colour(p scorer.Priority) string {
	switch p {
	case scorer.PriorityEmergency, scorer.PriorityAlert:
		return "#8B0000"
	case scorer.PriorityCritical:
		return "#E01E5A"
	case scorer.PriorityError:
		return "#F2711C"
	case scorer.PriorityWarning:
		return "#ECB22E"
	case scorer.PriorityNotice:
		return "#36C5F0"
	default:
		return "#9E9E9E"
	}
}

// title is the rule, or what the scorer saw for its own alerts.
func title(a *scorer.Alert) string {
	switch a.Kind {
	case scorer.KindAnomaly:
		return "behaviour anomaly"
	case scorer.KindEnd:
		return "behaviour anomaly (whole process sequence)"
	}
	return a.Event.Rule
}

// fullMessage renders the first message of an incident: a, plus the other
// alerts of the incident the same batch held (merged) and over what span.
func fullMessage(a *scorer.Alert, merged []*scorer.Alert, span time.Duration, maxTransitions int) message {
	more := len(merged)
	blocks := []block{section(fmt.Sprintf("*%s* · %s", strings.ToUpper(a.Priority.String()), esc(title(a))))}
	s := a.Subject
	fields := []text{
		mrkdwn("*Image*\n`"+esc(orDash(s.Image))+"`", maxFieldText),
		mrkdwn("*Container*\n"+esc(orDash(joinNonEmpty(" ", s.Container, paren(s.ContainerID)))), maxFieldText),
		mrkdwn("*Namespace/Pod*\n"+esc(orDash(joinNonEmpty("/", s.Namespace, s.Pod))), maxFieldText),
		mrkdwn("*Score*\n"+esc(scoreText(a.Score)), maxFieldText),
		mrkdwn("*Process ← parent*\n"+esc(orDash(processText(s))), maxFieldText),
		mrkdwn("*Host*\n"+esc(orDash(s.Hostname)), maxFieldText),
		mrkdwn(fmt.Sprintf("*Priority*\n%s → %s", a.Score.FalcoPriority, a.Priority), maxFieldText),
		mrkdwn("*Baseline*\n"+esc(baselineText(a.Baseline)), maxFieldText),
	}
	blocks = append(blocks, block{Type: "section", Fields: fields[:min(len(fields), maxFields)]})
	if tr := transitionsText(a.Explain, maxTransitions); tr != "" {
		blocks = append(blocks, section("*Least likely transitions*\n"+tr))
	}
	// An anomaly's event is its last observation (a system call, often the
	// exit): its output line would read as the cause. The explanation is.
	if a.Event.Output != "" && a.Kind == scorer.KindFalco {
		blocks = append(blocks, section("*Falco output*\n"+codeBlock(a.Event.Output, maxSectionText-len("*Falco output*\n"))))
	}
	if x := a.Anomaly; x != nil {
		blocks = append(blocks, contextBlock(fmt.Sprintf("follows %s alert `%s` at %s: %s, score %.2f vs threshold %.2f (×%.1f)",
			esc(x.Kind), esc(x.ID), x.Time.UTC().Format(time.RFC3339), esc(orDash(joinNonEmpty(" ", x.Process, pidText(x.PID)))),
			x.Score, x.Threshold, x.Ratio)))
	}
	ctx := fmt.Sprintf("alert `%s`", a.ID)
	if a.Reason != "" {
		ctx += " · " + esc(a.Reason)
	}
	blocks = append(blocks, contextBlock(ctx))
	if more > 0 {
		blocks = append(blocks, contextBlock(fmt.Sprintf("*and %d more like this in %s*\n%s", more, human(span), mergedText(merged))))
	}
	return message{
		Text:        fallback(a, more),
		Attachments: []attachment{{Color: colour(a.Priority), Blocks: limitBlocks(blocks)}},
	}
}

// digestMessage renders a follow-up of an ongoing incident: n alerts like
// the first since it, over since; latest is the most severe of this batch
// and merged the batch's others, listed.
func digestMessage(latest *scorer.Alert, merged []*scorer.Alert, n int, since time.Duration) message {
	head := fmt.Sprintf("*and %d more like this in %s* · %s · `%s` · container %s", n, human(since), esc(title(latest)),
		esc(orDash(latest.Subject.Image)), esc(orDash(joinNonEmpty(" ", latest.Subject.Container, paren(latest.Subject.ContainerID)))))
	blocks := []block{
		section(head),
		contextBlock(fmt.Sprintf("most severe: *%s* · %s · %s · alert `%s`", latest.Priority, esc(orDash(processText(latest.Subject))),
			esc(scoreText(latest.Score)), latest.ID)),
	}
	if len(merged) > 0 {
		blocks = append(blocks, contextBlock("also: "+mergedText(merged)))
	}
	if latest.Event.Output != "" && latest.Kind == scorer.KindFalco {
		blocks = append(blocks, section(codeBlock(latest.Event.Output, maxSectionText)))
	}
	return message{
		Text:        truncate(fmt.Sprintf("%s: %d more like this in %s (%s)", latest.Priority, n, human(since), esc(title(latest))), maxSectionText),
		Attachments: []attachment{{Color: colour(latest.Priority), Blocks: limitBlocks(blocks)}},
	}
}

// fallback is the top-level text: Slack shows it in notifications and
// parses it as mrkdwn, so what comes from the event (rule, image) is escaped
// like the blocks, or a rule named "<!channel>" would mention everyone.
func fallback(a *scorer.Alert, more int) string {
	s := fmt.Sprintf("%s: %s on %s", a.Priority, esc(title(a)), esc(orDash(a.Subject.Image)))
	if more > 0 {
		s += fmt.Sprintf(" (and %d more like this)", more)
	}
	return truncate(s, maxSectionText)
}

// maxMerged is how many merged alerts a message lists one by one.
const maxMerged = 10

// mergedText lists the alerts a message stands for: time, process, priority
// and id, so that each can be found downstream.
func mergedText(as []*scorer.Alert) string {
	var b strings.Builder
	for i, a := range as {
		if i == maxMerged {
			fmt.Fprintf(&b, "… %d more", len(as)-maxMerged)
			break
		}
		if i > 0 {
			b.WriteString(" · ")
		}
		fmt.Fprintf(&b, "%s %s %s `%s`", a.Time.UTC().Format("15:04:05"), esc(orDash(processText(a.Subject))), a.Priority, a.ID)
	}
	return b.String()
}

// processText is "proc (pid 42) ← parent", and for an alert its process
// tree raised "…, tree of sh (pid 40)": the root a responder acts on.
func processText(s scorer.Subject) string {
	p := joinNonEmpty(" ", s.Process, pidText(s.PID))
	if s.Parent != "" {
		p += " ← " + s.Parent
	}
	if s.TreeRootPID != 0 {
		p += ", tree of " + joinNonEmpty(" ", s.TreeRoot, pidText(s.TreeRootPID))
	}
	return p
}

// baselineText is the baseline's state and maturity.
func baselineText(m scorer.Maturity) string {
	if m.State == "" {
		return "none (image not observed)"
	}
	t := m.State
	if !m.Since.IsZero() {
		t += " since " + m.Since.UTC().Format("2006-01-02")
	}
	if !m.Graduated.IsZero() {
		t += ", graduated " + m.Graduated.UTC().Format("2006-01-02 15:04")
	}
	return t + fmt.Sprintf(", %d events", m.Events)
}

func scoreText(s scorer.Score) string {
	if !s.HasValue() {
		return orDash(s.Verdict)
	}
	if s.Threshold == 0 {
		return fmt.Sprintf("%.2f (%s, no threshold yet)", s.Value, s.Verdict)
	}
	return fmt.Sprintf("%.2f vs threshold %.2f (×%.1f, %s, %s)", s.Value, s.Threshold, s.Ratio, s.Band, s.Verdict)
}

func transitionsText(e *scorer.Explanation, limit int) string {
	if e == nil || len(e.Transitions) == 0 || limit == 0 {
		return ""
	}
	var b strings.Builder
	for i, t := range e.Transitions {
		if i == limit {
			fmt.Fprintf(&b, "… %d more\n", len(e.Transitions)-limit)
			break
		}
		// Symbols hold spaces ("execve /usr/bin/curl"): steps are set apart by " · ".
		h := strings.Join(t.History, " · ")
		if h == "" {
			h = "(process start)"
		}
		fmt.Fprintf(&b, "%s → %s  p=%.2g, history seen %d×\n", h, t.Symbol, t.Probability, t.HistorySeen)
	}
	return codeBlock(strings.TrimSuffix(b.String(), "\n"), maxSectionText-len("*Least likely transitions*\n"))
}

// codeBlock fences s, escaped, within limit characters in total.
func codeBlock(s string, limit int) string {
	s = strings.ReplaceAll(s, "```", "'''")
	return "```" + truncate(esc(s), limit-6) + "```"
}

// limitBlocks keeps a message within Slack's block limit.
func limitBlocks(bs []block) []block {
	if len(bs) <= maxBlocks {
		return bs
	}
	out := append(bs[:maxBlocks-1:maxBlocks-1], contextBlock(fmt.Sprintf("%s %d blocks left out", truncMarker, len(bs)-maxBlocks+1)))
	return out
}

// truncate cuts s to at most limit characters (runes), ending with the
// truncation marker when it cut.
func truncate(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	keep := limit - utf8.RuneCountInString(truncMarker)
	if keep < 0 {
		keep = 0
	}
	r := []rune(s)
	return string(r[:keep]) + truncMarker
}

// esc escapes the three characters Slack's mrkdwn reserves.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// human renders a duration the way a reader says it: "12 s", "5 min", "2.5 h".
func human(d time.Duration) string {
	switch {
	case d < time.Second:
		return "1 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute).Minutes()))
	default:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func pidText(pid int64) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf("(pid %d)", pid)
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
