package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

// adfaDir is the ADFA-LD copy shared beside the repository.
// adfaDir: $FALCO_SCORER_ADFA_LD (CI sets it), else beside the repository.
var adfaDir = func() string {
	if d := os.Getenv("FALCO_SCORER_ADFA_LD"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "data", "adfa-ld")
}()

// adfa holds system-call traces as names.
type adfa struct {
	training [][]string
	attacks  map[string][][]string // family (Adduser, Hydra_FTP, ...) → traces
}

func loadADFA(t testing.TB) *adfa {
	t.Helper()
	f, err := os.Open(filepath.Join(adfaDir, "syscalls-i386.tsv"))
	if err != nil {
		t.Skipf("ADFA-LD not found at %s: %v", adfaDir, err)
	}
	defer f.Close()
	names := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		num, name, ok := strings.Cut(sc.Text(), "\t")
		if ok && !strings.HasPrefix(num, "#") {
			names[num] = name
		}
	}
	read := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range strings.Fields(string(b)) {
			if name, ok := names[n]; ok {
				out = append(out, name)
			} else {
				out = append(out, "sys_"+n)
			}
		}
		return out
	}
	d := &adfa{attacks: map[string][][]string{}}
	train, _ := filepath.Glob(filepath.Join(adfaDir, "training", "*.txt"))
	sort.Strings(train)
	for _, p := range train {
		d.training = append(d.training, read(p))
	}
	atk, _ := filepath.Glob(filepath.Join(adfaDir, "attack", "*", "*.txt"))
	sort.Strings(atk)
	for _, p := range atk {
		fam := filepath.Base(filepath.Dir(p))
		fam = fam[:strings.LastIndexByte(fam, '_')]
		d.attacks[fam] = append(d.attacks[fam], read(p))
	}
	if len(d.training) == 0 || len(d.attacks) == 0 {
		t.Skip("ADFA-LD is incomplete")
	}
	return d
}

// traceNDJSON is one process of image running trace, ending with procexit.
func traceNDJSON(image string, pid int, trace []string) []byte {
	var b bytes.Buffer
	for i, s := range trace {
		b.Write(observationJSON(image, "poison", pid, pid*10000+i, s))
		b.WriteByte('\n')
	}
	b.Write(observationJSON(image, "poison", pid, pid*10000+len(trace), "procexit"))
	b.WriteByte('\n')
	return b.Bytes()
}

// reverseShell is the system-call trace of a reverse-shell process
// (socket, connect, dup2 ×3, execve, ...), 128 events: a process this
// image never runs.
func reverseShell() []string {
	burst := []string{"socket", "connect", "dup2", "dup2", "dup2", "execve", "brk", "getuid32", "setuid32",
		"execve", "socket", "connect", "sendto", "recvfrom", "chmod", "unlink"}
	var out []string
	for range 8 {
		out = append(out, burst...)
	}
	return out
}

// poisonConfig is the demo's learning regime as of this test (ADFA-LD
// traces hold every system call of a process, far more varied than the
// events of the shipped rules), pinned here so that demo tuning does not
// move the measurement, with dedup off so that every anomalous process is
// counted.
func poisonConfig(t *testing.T) Config {
	cfg := testConfig(t.TempDir())
	cfg.Scorer.LearningBlockEvents = 20000
	cfg.Scorer.LearningBlocks = 2
	cfg.Scorer.NewTransitionRate = 0.3
	cfg.Scorer.AlertBudget = 100
	cfg.Scorer.EndAlertRate = 0.05
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("dedup: {window: 0s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.RulesFile = rules
	return cfg
}

// anomalies returns the anomaly and sequence_end alerts raised so far,
// delivered or suppressed, once every posted event is scored.
func anomalies(t *testing.T, r *running, posted int) float64 {
	t.Helper()
	var m map[string]float64
	scorertest.WaitWithin(t, 60*time.Second, "events scored", func() bool {
		m = metrics(t, r.url)
		return sum(m, "falco_scorer_events_scored_total") >= float64(posted)
	})
	return sum(m, "falco_scorer_alerts_total", `kind="anomaly"`) + sum(m, "falco_scorer_alerts_total", `kind="sequence_end"`) +
		sum(m, "falco_scorer_alerts_suppressed_total", `kind="anomaly"`) + sum(m, "falco_scorer_alerts_suppressed_total", `kind="sequence_end"`)
}

// learnUntilGraduated posts normal traces (and, every attackEvery traces,
// an attack trace when attackEvery > 0) until the image graduates.
func learnUntilGraduated(t *testing.T, r *running, d *adfa, image string, pid *int, attack []string, attackEvery int) (posted, attackEvents int) {
	t.Helper()
	for i := 0; ; i++ {
		tr := d.training[i%len(d.training)]
		if attackEvery > 0 && i%attackEvery == attackEvery-1 {
			tr = attack
			attackEvents += len(tr)
		}
		postOK(t, r.url, traceNDJSON(image, *pid, tr), true)
		*pid++
		posted += len(tr) + 1
		if i%20 == 19 {
			var m map[string]float64
			scorertest.WaitWithin(t, 60*time.Second, "events scored", func() bool {
				m = metrics(t, r.url)
				return sum(m, "falco_scorer_events_scored_total") >= float64(posted)
			})
			if sum(m, "falco_scorer_baselines_graduated_total") >= 1 {
				return posted, attackEvents
			}
		}
		if i > 4*len(d.training) {
			t.Fatalf("image did not graduate after %d events", posted)
		}
	}
}

// TestBaselinePoisoning (issue 9) measures, on ADFA-LD traces, how many
// events of attack traffic it takes before an attack stops scoring as
// anomalous.
//
// After graduation the attacker replays the same attack process over and
// over, between normal processes: with the poisoning guard (events of an
// anomalous sequence are held back from learning) the attack must stay
// anomalous: flagged in at least 90 % of the repetitions and in every one of
// the last minReps. A second run puts the
// attacker inside the learning phase (one attack process in every 10),
// where nothing is held back since a learning baseline does not alert; it
// reports how many of the attack's processes are still flagged after
// graduation.
func TestBaselinePoisoning(t *testing.T) {
	if testing.Short() {
		t.Skip("replays ADFA-LD through the service")
	}
	d := loadADFA(t)
	var attack []string
	attackName := ""
	const maxReps, minReps = 30, 10

	t.Run("after graduation", func(t *testing.T) {
		r := startService(t, poisonConfig(t), "info")
		pid := 1
		posted, _ := learnUntilGraduated(t, r, d, "acme/app:1", &pid, nil, 0)
		before := anomalies(t, r, posted)
		t.Logf("graduated after %d events (%d processes)", posted, pid-1)
		// The attack: a reverse-shell process. (ADFA-LD's own attack
		// traces are mostly scored below the threshold by a baseline this
		// young, which would measure the detector, not the guard.)
		attack, attackName = reverseShell(), "reverse-shell process"
		var flags []int
		flagged, attackEvents, firstMiss := 0, 0, -1
		for rep := range maxReps {
			postOK(t, r.url, traceNDJSON("acme/app:1", pid, attack), true)
			pid++
			posted += len(attack) + 1
			attackEvents += len(attack)
			a := anomalies(t, r, posted)
			if a > before {
				flagged++
				flags = append(flags, 1)
			} else {
				flags = append(flags, 0)
				if firstMiss < 0 {
					firstMiss = rep
				}
			}
			before = a
			// a normal process between attacks, as on a live node
			tr := d.training[rep%len(d.training)]
			postOK(t, r.url, traceNDJSON("acme/app:1", pid, tr), true)
			pid++
			posted += len(tr) + 1
			before = anomalies(t, r, posted)
		}
		m := metrics(t, r.url)
		t.Logf("attack %s, %d events/process, replayed %d times after graduation (%d attack events): flagged %d/%d (%v), first unflagged repetition %d (after %d attack events); events held back by the guard %v",
			attackName, len(attack), maxReps, attackEvents, flagged, maxReps, flags, firstMiss, firstMiss*len(attack), sum(m, "falco_scorer_events_held_back_total"))
		// Learning the attack would show as a run of misses at the end;
		// a single miss is the detector's own error (the guard held every
		// attack event back either way, see the metric above).
		for rep := maxReps - minReps; rep < maxReps; rep++ {
			if flags[rep] == 0 {
				t.Errorf("attack scored normal at repetition %d of %d (%d attack events in): the baseline learned it", rep, maxReps, (rep+1)*len(attack))
				break
			}
		}
		if flagged < maxReps*9/10 {
			t.Errorf("attack flagged %d of %d repetitions, want ≥ 90 %%", flagged, maxReps)
		}
	})

	t.Run("during learning", func(t *testing.T) {
		if attack == nil {
			t.Skip("no attack pattern chosen")
		}
		r := startService(t, poisonConfig(t), "info")
		pid := 1
		posted, poison := learnUntilGraduated(t, r, d, "acme/app:1", &pid, attack, 10)
		flagged := 0
		const reps = 10
		for range reps {
			before := anomalies(t, r, posted)
			postOK(t, r.url, traceNDJSON("acme/app:1", pid, attack), true)
			pid++
			posted += len(attack) + 1
			if anomalies(t, r, posted) > before {
				flagged++
			}
		}
		t.Logf("attacker active during learning with %s (%d attack events among %d learned): after graduation the attack is flagged %d/%d times",
			attackName, poison, posted, flagged, reps)
	})
}
