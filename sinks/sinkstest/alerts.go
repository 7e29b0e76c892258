package sinkstest

import (
	"fmt"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// baseTime is the time of the first sample alert.
func baseTime() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }

// FalcoAlert returns a deterministic Falco-rule alert number i on image.
func FalcoAlert(i int, image, rule string) *scorer.Alert {
	t := baseTime().Add(time.Duration(i) * time.Second)
	raw := fmt.Sprintf(`{"hostname":"node-1","output":"%s: Notice A shell was spawned in a container (user=root shell=bash container_id=4e5c1a2b3c4d image=%s)","priority":"Notice","rule":%q,"source":"syscall","tags":["T1059","container","mitre_execution","shell"],"time":%q,"output_fields":{"container.id":"4e5c1a2b3c4d","container.image.repository":%q,"container.name":"web","evt.type":"execve","k8s.ns.name":"shop","k8s.pod.name":"web-7d9f","proc.cmdline":"bash -i","proc.name":"bash","proc.pid":%d,"user.uid":0}}`,
		t.Format("15:04:05.000000000"), image, rule, t.Format(time.RFC3339Nano), image, 4242+i)
	ev, err := scorer.DecodeJSON([]byte(raw))
	if err != nil {
		panic(fmt.Sprintf("sinkstest: fixture event: %v", err)) // fixture bug
	}
	return &scorer.Alert{
		ID:       scorer.AlertID(ev.Raw, scorer.KindFalco),
		Kind:     scorer.KindFalco,
		Time:     t,
		Priority: scorer.PriorityCritical,
		Event:    ev,
		Subject: scorer.Subject{
			Image: image, ImageSource: "tag", ContainerID: "4e5c1a2b3c4d", Container: "web",
			Namespace: "shop", Pod: "web-7d9f", Process: "bash", PID: int64(4242 + i), Hostname: "node-1",
		},
		Score: scorer.Score{
			Value: 17.25, Threshold: 9.5, Ratio: 17.25 / 9.5, Band: "high",
			Verdict: scorer.VerdictAnomalous, FalcoPriority: scorer.PriorityNotice,
		},
		Baseline: scorer.Maturity{State: "monitoring", Events: 120000, Transitions: 812, Since: baseTime().Add(-72 * time.Hour)},
		Explain: &scorer.Explanation{
			Window: []string{"openat", "read", "execve", "connect"},
			Transitions: []scorer.Transition{
				{History: []string{"openat", "read"}, Symbol: "execve", Probability: 0.00012, Surprise: 9.03, HistorySeen: 40211},
				{History: []string{"read", "execve"}, Symbol: "connect", Probability: 0.0021, Surprise: 6.17, HistorySeen: 17},
			},
		},
		Reason: "Falco rule fired in a container whose behaviour is anomalous",
	}
}

// AnomalyAlert returns a deterministic behaviour-anomaly alert number i.
func AnomalyAlert(i int, image string) *scorer.Alert {
	a := FalcoAlert(i, image, "falco-scorer observation")
	a.Kind = scorer.KindAnomaly
	a.ID = scorer.AlertID(a.Event.Raw, scorer.KindAnomaly)
	a.Priority = scorer.PriorityWarning
	a.Score.FalcoPriority = scorer.PriorityDebug
	a.Reason = "window score above the image's threshold"
	return a
}
