package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
)

const (
	crashDirEnv  = "STORE_CRASH_CHILD_DIR"
	crashSyncEnv = "STORE_CRASH_SYNC_INTERVAL" // the child's journal_sync_interval
)

// TestCrashChild is the child of TestSIGKILLLosesNothing: it appends and
// completes events as fast as it can and prints what was acknowledged,
// until it is killed. It does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestSIGKILLLosesNothing")
	}
	cfg := crashConfig(dir)
	if v := os.Getenv(crashSyncEnv); v != "" {
		iv, err := time.ParseDuration(v)
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		cfg.JournalSyncInterval = iv
	}
	d, err := Open(cfg, zerolog.Nop(), prometheus.NewRegistry())
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(kind string, seq uint64) {
		mu.Lock()
		fmt.Fprintf(out, "%s %d\n", kind, seq)
		out.Flush()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				seqs, err := d.Append(context.Background(), [][]byte{fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)})
				if err != nil {
					fmt.Println("ERR", err)
					os.Exit(1)
				}
				say("A", seqs[0])
				// Even events complete with an alert, most odd ones
				// without, and every 50th stays pending: journal segments
				// then both retire and linger while the process is killed.
				switch {
				case i%2 == 0:
					put := scorer.OutboxPut{Sink: "k", AlertID: strconv.FormatUint(seqs[0], 10), Payload: []byte("{}")}
					if err := d.Complete(seqs, []scorer.OutboxPut{put}); err != nil {
						fmt.Println("ERR", err)
						os.Exit(1)
					}
					say("C", seqs[0])
				case i%50 != 1:
					say("P", seqs[0]) // killed after this, the event may be either pending or done
					if err := d.Complete(seqs, nil); err != nil {
						fmt.Println("ERR", err)
						os.Exit(1)
					}
					say("N", seqs[0])
				}
			}
		})
	}
	wg.Wait()
}

// crashConfig uses the smallest journal segments, so that a round writes
// many and retires most of them.
func crashConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.JournalSegmentBytes = 64 << 10
	return cfg
}

// TestSIGKILLLosesNothing kills a process that appends and completes under
// load, several times, and checks after each kill that every acknowledged
// append is still in the journal or (if completed) in the outbox, and every
// acknowledged Complete moved its event from one to the other. With
// journal_sync_interval the acknowledged groups are not yet synced when the
// process dies, and must survive all the same (the kernel holds them).
func TestSIGKILLLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	t.Run("sync_each_group", func(t *testing.T) { sigkillRounds(t, "0s") })
	// The default mode (journal_sync_interval 100ms). Killed 300-700 ms in:
	// the syncer has run, and the last 100 ms of acknowledged groups are not
	// synced.
	t.Run("sync_interval_default", func(t *testing.T) { sigkillRounds(t, "") })
}

func sigkillRounds(t *testing.T, syncInterval string) {
	dir := t.TempDir()
	appended, completed := map[uint64]bool{}, map[uint64]bool{}
	silent, maybeSilent := map[uint64]bool{}, map[uint64]bool{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSyncEnv+"="+syncInterval)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // the race detector reports there
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		kill := time.After(time.Duration(300+200*round) * time.Millisecond)
		killed := false
		for !killed || lines != nil {
			select {
			case <-kill:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				kill = nil
			case l, ok := <-lines:
				if !ok {
					lines = nil
					if !killed {
						t.Fatalf("round %d: child exited early", round)
					}
					continue
				}
				kind, num, _ := strings.Cut(l, " ")
				seq, err := strconv.ParseUint(num, 10, 64)
				switch {
				case kind == "A" && err == nil:
					appended[seq] = true
				case kind == "C" && err == nil:
					completed[seq] = true
				case kind == "N" && err == nil:
					silent[seq] = true
				case kind == "P" && err == nil:
					maybeSilent[seq] = true
				default:
					t.Fatalf("round %d: child said %q", round, l)
				}
			}
		}
		_ = cmd.Wait()
		own, dep := scorertest.OwnDataRaces(stderr.String())
		for _, r := range dep {
			t.Logf("round %d: the child reported a data race inside Badger (not falco-scorer's code):\n%s", round, r)
		}
		if len(own) > 0 {
			t.Fatalf("round %d: the child reported a data race:\n%s", round, stderr.String())
		}

		d, err := Open(crashConfig(dir), zerolog.Nop(), prometheus.NewRegistry())
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL = %v", round, err)
		}
		inJournal := map[uint64]bool{}
		if err := d.Replay(func(seq uint64, _ []byte) error { inJournal[seq] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		inOutbox := map[uint64]bool{}
		pending, err := d.Pending("k", 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pending {
			seq, _ := strconv.ParseUint(e.AlertID, 10, 64)
			if inOutbox[seq] {
				t.Errorf("round %d: alert %d twice in the outbox", round, seq)
			}
			inOutbox[seq] = true
		}
		lost := 0
		for seq := range appended {
			if !inJournal[seq] && !inOutbox[seq] && !maybeSilent[seq] {
				lost++
			}
			if inJournal[seq] && inOutbox[seq] {
				t.Errorf("round %d: event %d both in the journal and the outbox", round, seq)
			}
		}
		for seq := range completed {
			if inJournal[seq] || !inOutbox[seq] {
				t.Errorf("round %d: completed event %d: journal %v, outbox %v", round, seq, inJournal[seq], inOutbox[seq])
			}
		}
		for seq := range silent {
			if inJournal[seq] || inOutbox[seq] {
				t.Errorf("round %d: event %d completed without alerts: journal %v, outbox %v", round, seq, inJournal[seq], inOutbox[seq])
			}
		}
		if lost > 0 {
			t.Errorf("round %d: %d of %d acknowledged events lost", round, lost, len(appended))
		}
		// Score what was replayed, as the pipeline would, so that the next
		// round's kills also hit segments being retired.
		var replayed []uint64
		for seq := range inJournal {
			replayed = append(replayed, seq)
			silent[seq], maybeSilent[seq] = true, true
		}
		if err := d.Complete(replayed, nil); err != nil {
			t.Fatal(err)
		}
		segs := len(d.journal.Segments())
		t.Logf("round %d: %d acknowledged appends, %d completes (%d without alerts), journal %d in %d segments, outbox %d",
			round, len(appended), len(completed), len(silent), len(inJournal), segs, len(inOutbox))
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
