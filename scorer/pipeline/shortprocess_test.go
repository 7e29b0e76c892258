package pipeline

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// obs builds one observation with the argument fields the symbolizer reads.
func (h *harness) obs(pid, ppid int, proc, evtType string, extra map[string]any) scorer.Event {
	h.seq++
	h.tim = h.tim.Add(time.Microsecond)
	f := map[string]any{"container.id": "c-api", "container.image.repository": "api", "container.image.tag": "1",
		"proc.pid": pid, "proc.ppid": ppid, "proc.name": proc, "evt.type": evtType, "evt.res": "SUCCESS",
		"k8s.ns.name": "shop", "k8s.pod.name": "api-1"}
	for k, v := range extra {
		f[k] = v
	}
	raw, _ := json.Marshal(map[string]any{"rule": "falco-scorer observation", "priority": "Debug",
		"time": h.tim.Format(time.RFC3339Nano), "tags": []string{"falco_scorer"}, "output_fields": f,
		"output": fmt.Sprintf("event %d", h.seq), "source": "syscall"})
	ev, err := scorer.DecodeJSON(raw)
	if err != nil {
		h.t.Fatalf("DecodeJSON: %v", err)
	}
	return ev
}

// worker emits a worker process serving requests, now and then spawning a
// log compressor child.
func (h *harness) worker(pid int, requests int, rng *rand.Rand) []scorer.Event {
	var evs []scorer.Event
	evs = append(evs, h.obs(pid, 1, "python3", "execve", map[string]any{"proc.exepath": "/usr/bin/python3.11"}))
	for r := 0; r < requests; r++ {
		evs = append(evs,
			h.obs(pid, 1, "python3", "accept4", map[string]any{"fd.name": fmt.Sprintf("10.0.0.9:%d->10.0.0.5:8000", 40000+rng.IntN(20000))}),
			h.obs(pid, 1, "python3", "connect", map[string]any{"fd.name": fmt.Sprintf("10.0.0.5:%d->10.0.0.7:6379", 40000+rng.IntN(20000))}))
		if rng.IntN(4) == 0 {
			evs = append(evs, h.obs(pid, 1, "python3", "openat", map[string]any{"fd.name": "/var/log/app/access.log", "evt.arg.flags": "O_WRONLY|O_APPEND"}))
		}
		if rng.IntN(25) == 0 {
			child := 50000 + h.seq
			evs = append(evs,
				h.obs(pid, 1, "python3", "clone", map[string]any{"evt.res": fmt.Sprint(child)}),
				h.obs(child, pid, "gzip", "execve", map[string]any{"proc.exepath": "/usr/bin/gzip"}),
				h.obs(child, pid, "gzip", "openat", map[string]any{"fd.name": "/var/log/app/access.log.1.gz", "evt.arg.flags": "O_WRONLY|O_CREAT|O_TRUNC", "evt.arg.mode": "0644"}),
				h.obs(child, pid, "gzip", "procexit", nil))
		}
	}
	return evs
}

// TestThreeEventChildIsJudged: a worker's child that runs a shell, execs a
// downloader, connects out and exits (three scored events) is flagged, in
// the context of its parent, while the worker's ordinary children are not.
func TestThreeEventChildIsJudged(t *testing.T) {
	h, st, rng := trainedOnWorkers(t, testConfig())
	n0 := len(st.alerts(t))

	const w, child = 3000, 3001
	evs := h.worker(w, 40, rng)
	evs = append(evs,
		h.obs(w, 1, "python3", "accept4", map[string]any{"fd.name": "10.0.0.9:41000->10.0.0.5:8000"}),
		h.obs(w, 1, "python3", "clone", map[string]any{"evt.res": fmt.Sprint(child)}),
		h.obs(child, w, "sh", "execve", map[string]any{"proc.exepath": "/bin/sh"}),
		h.obs(child, w, "curl", "execve", map[string]any{"proc.exepath": "/usr/bin/curl"}),
		h.obs(child, w, "curl", "connect", map[string]any{"fd.name": "10.0.0.5:51000->93.184.216.34:443"}),
		h.obs(child, w, "curl", "procexit", nil))
	evs = append(evs, h.worker(w, 40, rng)[1:]...)
	h.accept(evs)
	h.settle()

	onChild, other := 0, 0
	for _, a := range anomalyAlerts(st.alerts(t)[n0:]) {
		if a.pid == child {
			onChild++
		} else {
			other++
		}
	}
	if onChild != 1 {
		t.Errorf("anomaly alerts on the three-event child = %d, want 1", onChild)
	}
	if other != 0 {
		t.Errorf("anomaly alerts on the worker and its ordinary children = %d, want 0", other)
	}
}

// TestGraduationResetsOnlineScores: a live sequence's score built against
// a learning model does not carry into monitoring; other images' do.
func TestGraduationResetsOnlineScores(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	w := newIdlePipeline(t, testConfig(), now).workers[0]
	img, other := w.newImage("a:1", now), w.newImage("b:1", now)
	s1 := w.sequence(seqKey{container: "c1", pid: 1}, 0, img, "c1", now)
	s2 := w.sequence(seqKey{container: "c2", pid: 1}, 0, other, "c2", now)
	s1.cusum.S, s2.cusum.S = 42, 42
	w.resetScores(img)
	if s1.cusum.S != 0 || s2.cusum.S != 42 {
		t.Errorf("after resetScores(a) scores = %v, %v; want 0, 42", s1.cusum.S, s2.cusum.S)
	}
}

// TestTreeEvidenceJudgesOneEventChildren: a worker that now and then
// spawns three children one after the other (a log rotation) does so once
// more, but each child execs a never-seen tool and exits: one scored event
// each, too few to raise a score of its own. The worker's subtree score
// flags it once, about a child; without tree_evidence nothing is.
func TestTreeEvidenceJudgesOneEventChildren(t *testing.T) {
	for _, tree := range []bool{false, true} {
		t.Run(fmt.Sprintf("tree_evidence=%v", tree), func(t *testing.T) {
			st := newMemStore()
			cfg := testConfig()
			cfg.TreeEvidence = tree
			h := newHarness(t, cfg, st)
			rng := rand.New(rand.NewPCG(7, 8))
			// spawn runs tools one after the other in children of w.
			spawn := func(w int, tools ...string) []scorer.Event {
				var evs []scorer.Event
				for _, tool := range tools {
					child := 60000 + h.seq
					evs = append(evs,
						h.obs(w, 1, "python3", "clone", map[string]any{"evt.res": fmt.Sprint(child)}),
						h.obs(child, w, "tool", "execve", map[string]any{"proc.exepath": tool}),
						h.obs(child, w, "tool", "procexit", nil))
				}
				return evs
			}
			h.trainWorkers(func(pid int) []scorer.Event {
				evs := h.worker(pid, 120, rng)
				evs = append(evs, spawn(pid, "/usr/bin/gzip", "/usr/bin/gzip", "/usr/bin/gzip")...)
				return append(evs, h.worker(pid, 120, rng)[1:]...)
			})
			if s, _ := h.state("api:1"); s != scorer.StateMonitoring {
				t.Fatalf("after training state = %q, want monitoring", s)
			}
			n0 := len(st.alerts(t))

			const w = 3000
			evs := h.worker(w, 40, rng)
			first := 60000 + h.seq
			evs = append(evs, spawn(w, "/usr/bin/id", "/usr/bin/uname", "/usr/bin/whoami")...)
			last := 60000 + h.seq
			evs = append(evs, h.worker(w, 40, rng)[1:]...)
			h.accept(evs)
			h.settle()

			onChildren, other := 0, 0
			for _, a := range anomalyAlerts(st.alerts(t)[n0:]) {
				if a.pid >= first && a.pid <= last {
					onChildren++
					if !strings.Contains(a.reason, "process tree under pid 3000") {
						t.Errorf("alert on child %d: reason %q, want it to name the worker's process tree", a.pid, a.reason)
					}
					if a.rootPID != 3000 || a.root != "python3" {
						t.Errorf("alert on child %d: subject tree root %d %q, want the worker 3000 \"python3\"", a.pid, a.rootPID, a.root)
					}
					// The explanation names the siblings' steps that
					// added up, not only this child's one.
					if !slices.Contains(a.steps, "execve /usr/bin/id") || !slices.Contains(a.steps, "execve /usr/bin/uname") {
						t.Errorf("alert on child %d explains %q, want the children's execs of id and uname", a.pid, a.steps)
					}
				} else {
					other++
				}
			}
			want := 0
			if tree {
				want = 1
			}
			if onChildren != want || other != 0 {
				t.Errorf("anomaly alerts: %d on the one-event children (want %d), %d elsewhere (want 0)", onChildren, want, other)
			}
		})
	}
}

// TestLearningMinDuration: a baseline that converged keeps learning until
// learning_min_duration of event time has passed since its first event.
func TestLearningMinDuration(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.LearningMinDuration = time.Hour
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(7, 8))
	h.trainWorkers(func(pid int) []scorer.Event { return h.worker(pid, 250, rng) })
	if s, _ := h.state("api:1"); s != scorer.StateLearning {
		t.Fatalf("converged after minutes of event time: state = %q, want learning until an hour passed", s)
	}
	// The admin view says where the hour counts from (and the store keeps
	// it, for a restart).
	for _, w := range h.p.workers {
		if img, ok := w.images["api:1"]; ok {
			g, _ := DescribeMeta(img.storedMeta())["graduation"].(map[string]any)
			if from, _ := g["learning_from"].(time.Time); from.IsZero() || from.After(h.tim) {
				t.Errorf("graduation.learning_from = %v, want the first learned event's time", g["learning_from"])
			}
		}
	}
	h.tim = h.tim.Add(time.Hour)
	h.accept(h.worker(2100, 250, rng))
	h.settle()
	if s, _ := h.state("api:1"); s != scorer.StateMonitoring {
		t.Fatalf("an hour of event time later: state = %q, want monitoring", s)
	}
}

// anomalyAlert is what the short-process tests read of an anomaly alert.
type anomalyAlert struct {
	pid     int
	reason  string
	steps   []string // the explanation's transitions' symbols
	rootPID int      // subject.tree_root_pid: an alert its process tree raised
	root    string   // subject.tree_root
}

// anomalyAlerts picks the anomaly alerts (not Falco's) out of decoded alerts.
func anomalyAlerts(alerts []map[string]any) []anomalyAlert {
	var out []anomalyAlert
	for _, a := range alerts {
		if a["kind"] == scorer.KindFalco {
			continue
		}
		reason, _ := a["reason"].(string)
		subj := a["subject"].(map[string]any)
		aa := anomalyAlert{pid: int(subj["pid"].(float64)), reason: reason}
		if p, ok := subj["tree_root_pid"].(float64); ok {
			aa.rootPID, aa.root = int(p), subj["tree_root"].(string)
		}
		if x, ok := a["explanation"].(map[string]any); ok {
			ts, _ := x["transitions"].([]any)
			for _, tr := range ts {
				aa.steps = append(aa.steps, tr.(map[string]any)["symbol"].(string))
			}
		}
		out = append(out, aa)
	}
	return out
}

// TestTreeEvidenceQuietUnderBusyAncestor: a long-lived supervisor whose
// children are the workers, restarted one after another for thousands of
// events (with their own ordinary children, and a rare but known step, now
// and then), raises no alert through its subtree score: ordinary
// descendants' events wear it down as they do a process's own score, so
// the rare steps, far apart, never add up.
func TestTreeEvidenceQuietUnderBusyAncestor(t *testing.T) {
	st := newMemStore()
	h := newHarness(t, testConfig(), st)
	rng := rand.New(rand.NewPCG(9, 10))
	const sup = 1000
	// under re-parents a worker's events to the supervisor. Now and then
	// a worker re-reads its feature flags: known, rare, a few bits above
	// the allowance each time.
	under := func(evs []scorer.Event, pid int) []scorer.Event {
		return h.underSupervisor(sup, pid, evs, func() []scorer.Event {
			if rng.IntN(100) != 0 {
				return nil
			}
			return []scorer.Event{h.obs(pid, sup, "python3", "openat",
				map[string]any{"fd.name": "/etc/app/flags.json", "evt.arg.flags": "O_WRONLY|O_CREAT"})}
		})
	}
	h.accept([]scorer.Event{h.obs(sup, 1, "supervisord", "execve", map[string]any{"proc.exepath": "/usr/bin/supervisord"})})
	h.trainWorkers(func(pid int) []scorer.Event { return under(h.worker(pid, 250, rng), pid) })
	if s, _ := h.state("api:1"); s != scorer.StateMonitoring {
		t.Fatalf("after training state = %q, want monitoring", s)
	}
	for i := 0; i < 40; i++ { // 40 restarts, about 25,000 events, one supervisor
		pid := 4000 + i
		evs := under(h.worker(pid, 250, rng), pid)
		evs = append(evs, h.obs(pid, sup, "python3", "procexit", nil))
		h.accept(evs)
	}
	h.settle()
	// From the start: the supervisor's subtree is judged from the moment
	// the image graduates, halfway through the training workers.
	if as := anomalyAlerts(st.alerts(t)); len(as) != 0 {
		t.Errorf("%d anomaly alerts under a busy supervisor, want 0: %+v", len(as), as)
	}
	// The supervisor was live all along and its subtree score did rise at
	// times (the workers' unusual steps), or the test proves nothing.
	raised := false
	for _, w := range h.p.workers {
		for key, el := range w.seqs {
			if key.pid == sup {
				sq := el.Value.(*sequence)
				raised = sq.treeLog != nil
			}
		}
	}
	if !raised {
		t.Error("the supervisor's subtree score never rose: no descendant's step reached it")
	}
}

// trainWorkers feeds the events of 12 training workers (pids 2000-2011, one after
// the other) and waits until they are scored.
func (h *harness) trainWorkers(worker func(pid int) []scorer.Event) {
	for i := 0; i < 12; i++ {
		h.accept(worker(2000 + i))
	}
	h.settle()
}

// TestRepeatedStepAlertsOnce: a worker that, after a rollout, now and then
// calls a never-seen endpoint and writes a never-seen file (two novel
// steps: an alarm each time, falling back between calls) is reported once
// for that step within repeat_interval of event time, not at every call.
// A different unusual step is reported, and so is the first step again
// once repeat_interval has passed.
func TestRepeatedStepAlertsOnce(t *testing.T) {
	for _, interval := range []time.Duration{0, 10 * time.Minute} {
		t.Run(fmt.Sprintf("repeat_interval=%s", interval), func(t *testing.T) {
			cfg := testConfig()
			cfg.RepeatInterval = interval
			h, st, rng := trainedOnWorkers(t, cfg)
			n0 := len(st.alerts(t))

			const w = 3000
			call := func(port int, file string) []scorer.Event {
				return []scorer.Event{
					h.obs(w, 1, "python3", "connect", map[string]any{"fd.name": fmt.Sprintf("10.0.0.5:%d->10.0.0.8:%d", 40000+rng.IntN(20000), port)}),
					h.obs(w, 1, "python3", "openat", map[string]any{"fd.name": file, "evt.arg.flags": "O_WRONLY|O_CREAT|O_TRUNC", "evt.arg.mode": "0644"}),
				}
			}
			evs := h.worker(w, 40, rng)
			for i := 0; i < 4; i++ {
				evs = append(evs, call(9100, "/var/lib/app/flags.json")...)
				evs = append(evs, h.worker(w, 30, rng)[1:]...)
			}
			evs = append(evs, call(9200, "/srv/data/limits.json")...)
			evs = append(evs, h.worker(w, 30, rng)[1:]...)
			h.accept(evs)
			h.settle()
			h.tim = h.tim.Add(11 * time.Minute)
			evs = append(call(9100, "/var/lib/app/flags.json"), h.worker(w, 30, rng)[1:]...)
			h.accept(evs)
			h.settle()

			alerts := anomalyAlerts(st.alerts(t)[n0:])
			for _, a := range alerts {
				if a.pid != w {
					t.Errorf("anomaly alert on pid %d, want only the worker's", a.pid)
				}
			}
			want := 3 // the first call, the other endpoint, the first again after 11 minutes
			if interval == 0 {
				want = 6 // one per call
			}
			if len(alerts) != want {
				t.Errorf("repeat_interval %s: %d anomaly alerts, want %d", interval, len(alerts), want)
			}
		})
	}
}

// attackShell emits a shell spawned by worker w that runs tools one after
// the other, each a child that execs a never-seen binary and connects out
// (two never-seen steps each: enough for an alarm of its own).
func (h *harness) attackShell(w, shell int, tools ...string) []scorer.Event {
	evs := []scorer.Event{
		h.obs(w, 1, "python3", "clone", map[string]any{"evt.res": fmt.Sprint(shell)}),
		h.obs(shell, w, "sh", "execve", map[string]any{"proc.exepath": "/bin/sh"}),
	}
	for i, tool := range tools {
		child := shell + 1 + i
		evs = append(evs,
			h.obs(shell, w, "sh", "clone", map[string]any{"evt.res": fmt.Sprint(child)}),
			h.obs(child, shell, tool, "execve", map[string]any{"proc.exepath": "/usr/bin/" + tool}),
			h.obs(child, shell, tool, "connect", map[string]any{"fd.name": fmt.Sprintf("10.0.0.5:%d->93.184.216.34:4444", 51000+i)}),
			h.obs(child, shell, tool, "procexit", nil))
	}
	return append(evs, h.obs(shell, w, "sh", "procexit", nil))
}

// TestDriftingWorkerDoesNotSwallowAttack: a worker that calls a new
// endpoint and writes a new file at every request (a rollout) keeps its own
// and its subtree's score up by its own steps; an attacker's tool spawned
// under it, with two never-seen steps of its own, alerts all the same.
func TestDriftingWorkerDoesNotSwallowAttack(t *testing.T) {
	h, st, rng := trainedOnWorkers(t, testConfig())
	n0 := len(st.alerts(t))

	const w, tool = 3000, 3100
	evs := h.worker(w, 40, rng)
	drift := func() []scorer.Event {
		return []scorer.Event{
			h.obs(w, 1, "python3", "accept4", map[string]any{"fd.name": fmt.Sprintf("10.0.0.9:%d->10.0.0.5:8000", 40000+rng.IntN(20000))}),
			h.obs(w, 1, "python3", "connect", map[string]any{"fd.name": fmt.Sprintf("10.0.0.5:%d->10.0.0.8:9100", 40000+rng.IntN(20000))}),
			h.obs(w, 1, "python3", "openat", map[string]any{"fd.name": "/srv/flags/state.json", "evt.arg.flags": "O_WRONLY|O_CREAT|O_TRUNC", "evt.arg.mode": "0644"}),
		}
	}
	for range 5 {
		evs = append(evs, drift()...)
	}
	evs = append(evs,
		h.obs(w, 1, "python3", "clone", map[string]any{"evt.res": fmt.Sprint(tool)}),
		h.obs(tool, w, "nc", "execve", map[string]any{"proc.exepath": "/usr/bin/nc"}),
		h.obs(tool, w, "nc", "connect", map[string]any{"fd.name": "10.0.0.5:51000->93.184.216.34:4444"}),
		h.obs(tool, w, "nc", "procexit", nil))
	for range 5 {
		evs = append(evs, drift()...)
	}
	h.accept(evs)
	h.settle()

	onTool, onWorker := 0, 0
	for _, a := range anomalyAlerts(st.alerts(t)[n0:]) {
		switch a.pid {
		case tool:
			onTool++
		case w:
			onWorker++
		}
	}
	if onWorker == 0 {
		t.Fatalf("no alert on the drifting worker: the test's drift does not raise an episode")
	}
	if onTool != 1 {
		t.Errorf("alerts on the attacker's tool under the drifting worker = %d, want 1", onTool)
	}
}

// TestSupervisorIncidentDoesNotSwallowSiblings: workers run under a
// supervisor (trained so). One worker's drift raises the supervisor's
// subtree episode and keeps it up; an attack inside another worker still
// alerts, and so does an attacker's shell under it. (A fold of a process's
// own alarm into an ancestor's episode, tried and rejected, hid both.)
func TestSupervisorIncidentDoesNotSwallowSiblings(t *testing.T) {
	for _, attack := range []string{"inside the worker", "a shell under the worker"} {
		t.Run(attack, func(t *testing.T) {
			st := newMemStore()
			h := newHarness(t, testConfig(), st)
			rng := rand.New(rand.NewPCG(9, 10))
			const sup, w1, w2, shell = 1000, 3000, 3001, 3100
			under := func(evs []scorer.Event, pid int) []scorer.Event { return h.underSupervisor(sup, pid, evs, nil) }
			h.accept([]scorer.Event{h.obs(sup, 1, "supervisord", "execve", map[string]any{"proc.exepath": "/usr/bin/supervisord"})})
			h.trainWorkers(func(pid int) []scorer.Event { return under(h.worker(pid, 250, rng), pid) })
			if s, _ := h.state("api:1"); s != scorer.StateMonitoring {
				t.Fatalf("after training state = %q, want monitoring", s)
			}
			n0 := len(st.alerts(t))
			drift := func() []scorer.Event {
				return []scorer.Event{
					h.obs(w1, sup, "python3", "accept4", map[string]any{"fd.name": fmt.Sprintf("10.0.0.9:%d->10.0.0.5:8000", 40000+rng.IntN(20000))}),
					h.obs(w1, sup, "python3", "connect", map[string]any{"fd.name": fmt.Sprintf("10.0.0.5:%d->10.0.0.8:9100", 40000+rng.IntN(20000))}),
					h.obs(w1, sup, "python3", "openat", map[string]any{"fd.name": "/srv/flags/state.json", "evt.arg.flags": "O_WRONLY|O_CREAT|O_TRUNC", "evt.arg.mode": "0644"}),
				}
			}
			evs := under(h.worker(w1, 40, rng), w1)
			evs = append(evs, under(h.worker(w2, 40, rng), w2)...)
			for range 5 {
				evs = append(evs, drift()...)
			}
			if attack == "inside the worker" {
				evs = append(evs,
					h.obs(w2, sup, "python3", "connect", map[string]any{"fd.name": "10.0.0.5:51000->93.184.216.34:4444"}),
					h.obs(w2, sup, "python3", "openat", map[string]any{"fd.name": "/etc/shadow", "evt.arg.flags": "O_RDONLY"}),
					h.obs(w2, sup, "python3", "execve", map[string]any{"proc.exepath": "/usr/bin/nc"}),
					h.obs(w2, sup, "nc", "connect", map[string]any{"fd.name": "10.0.0.5:51001->93.184.216.34:4444"}))
			} else {
				evs = append(evs, h.attackShell(w2, shell, "nc", "socat", "ncat")...)
			}
			for range 3 {
				evs = append(evs, drift()...)
			}
			h.accept(evs)
			h.settle()

			onW1, onAttack := 0, 0
			for _, a := range anomalyAlerts(st.alerts(t)[n0:]) {
				switch {
				case a.pid == w1:
					onW1++
				case a.pid == w2 || a.pid >= shell && a.pid <= shell+3:
					onAttack++
				}
			}
			if onW1 == 0 {
				t.Fatalf("no alert on the drifting worker: the test's drift raises no episode")
			}
			if onAttack == 0 {
				t.Errorf("the attack %s, beside the drifting worker, raised no alert", attack)
			}
		})
	}
}

// TestRepeatsWindow: a repeat is the same step within repeat_interval of
// the alert either way in event time; 0 folds nothing.
func TestRepeatsWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var s sequence
	s.markAlerted(7, t0)
	for _, c := range []struct {
		sym      markov.Symbol
		at       time.Duration
		interval time.Duration
		want     bool
	}{
		{7, 5 * time.Minute, 10 * time.Minute, true},
		{8, 5 * time.Minute, 10 * time.Minute, false},
		{7, 11 * time.Minute, 10 * time.Minute, false},
		{7, -5 * time.Minute, 10 * time.Minute, true},   // a replay, or a clock stepping back
		{7, -60 * time.Minute, 10 * time.Minute, false}, // not folded for longer than the interval
		{7, time.Second, 0, false},
	} {
		if got := s.repeats(c.sym, t0.Add(c.at), c.interval); got != c.want {
			t.Errorf("repeats(%d, t0%+v, %v) = %v, want %v", c.sym, c.at, c.interval, got, c.want)
		}
	}
	for i := range maxAlertMarks + 2 {
		s.markAlerted(markov.Symbol(100+i), t0)
	}
	if len(s.alertedOn) != maxAlertMarks || s.repeats(7, t0, time.Hour) {
		t.Errorf("after %d more marks: %d kept, the oldest still there %v; want %d, gone", maxAlertMarks+2,
			len(s.alertedOn), s.repeats(7, t0, time.Hour), maxAlertMarks)
	}
}

// underSupervisor re-parents worker pid's events to the supervisor sup
// (the worker's own children stay its own), rebuilding them with obs;
// after each of the worker's own events it adds what also returns (nil:
// nothing).
func (h *harness) underSupervisor(sup, pid int, evs []scorer.Event, also func() []scorer.Event) []scorer.Event {
	out := make([]scorer.Event, 0, len(evs)) // not evs[:0]: what also adds would overwrite events not read yet
	for _, ev := range evs {
		f := map[string]any{}
		for _, k := range []string{"proc.exepath", "fd.name", "evt.arg.flags", "evt.arg.mode", "evt.res"} {
			if v := ev.Field(k); v != "" {
				f[k] = v
			}
		}
		p, _ := ev.IntField("proc.pid")
		ppid := sup
		if int(p) != pid {
			ppid = pid // the worker's own child
		}
		out = append(out, h.obs(int(p), ppid, ev.Field("proc.name"), ev.Field("evt.type"), f))
		if int(p) == pid && also != nil {
			out = append(out, also()...)
		}
	}
	return out
}

// TestOwnAlarmInsideTreeEpisodeNamesRoot: the tools an attacker's shell
// runs each raise an alarm of their own; those raised while the shell's
// subtree is in an anomalous episode name the shell as their tree's root,
// as the alert the subtree raised does, so that readers can group them.
func TestOwnAlarmInsideTreeEpisodeNamesRoot(t *testing.T) {
	h, st, rng := trainedOnWorkers(t, testConfig())
	n0 := len(st.alerts(t))

	const w, shell = 3000, 3100
	evs := h.worker(w, 40, rng)
	evs = append(evs, h.attackShell(w, shell, "nc", "socat", "ncat")...)
	h.accept(evs)
	h.settle()

	alerts := anomalyAlerts(st.alerts(t)[n0:])
	named := 0
	for _, a := range alerts {
		if a.pid < shell || a.pid > shell+3 {
			t.Errorf("alert on pid %d, want only the shell's tree (%d..%d)", a.pid, shell, shell+3)
		}
		if a.rootPID != 0 {
			named++
			if a.rootPID != shell && a.rootPID != w {
				t.Errorf("alert on pid %d names tree root %d, want the shell %d (or its worker)", a.pid, a.rootPID, shell)
			}
		}
	}
	if len(alerts) < 2 || named < len(alerts)-1 {
		t.Errorf("%d alerts in the shell's tree, %d naming a tree root: want each after the first to name it", len(alerts), named)
	}
}

// trainedOnWorkers returns a harness with cfg whose image "api:1" learned
// from workers serving requests until it monitors, its store and the
// random source the workers drew from (seeded alike for every test).
func trainedOnWorkers(t *testing.T, cfg Config) (*harness, *memStore, *rand.Rand) {
	t.Helper()
	st := newMemStore()
	h := newHarness(t, cfg, st)
	rng := rand.New(rand.NewPCG(7, 8))
	h.trainWorkers(func(pid int) []scorer.Event { return h.worker(pid, 250, rng) })
	if s, _ := h.state("api:1"); s != scorer.StateMonitoring {
		t.Fatalf("after training state = %q, want monitoring", s)
	}
	return h, st, rng
}
