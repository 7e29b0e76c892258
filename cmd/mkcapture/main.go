// Command mkcapture builds the demo capture that `falco-scorer demo` replays:
// Falco JSON events (NDJSON, gzip) made from ADFA-LD system-call traces.
//
// Each ADFA-LD trace is one process; its system-call numbers are named with
// the i386 table and emitted as falco-scorer observation events of a
// container of one of a few images. Normal training traces teach the
// baselines, normal validation traces show monitoring, and a few attack traces
// play out inside one container of one image, next to Falco rule alerts from
// that container. The output is deterministic for the same inputs.
//
//	go run ./cmd/mkcapture -data ../shared/data/adfa-ld -out cmd/falco-scorer/demodata/capture.ndjson.gz
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type image struct {
	repo, tag, digest, ns, app, proc, user string
}

var images = []image{
	{"docker.io/library/nginx", "1.27", "sha256:6784b4b2d9a8c1b7f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b", "shop", "web", "nginx", "www-data"},
	{"ghcr.io/acme/checkout-api", "2.3.1", "", "shop", "checkout", "checkout", "app"},
	{"docker.io/library/redis", "7.4", "", "cache", "redis", "redis-server", "redis"},
}

// attacked is the image whose container is attacked at the end.
const attacked = 1

// AttackPID is the first pid of the attack processes; normal processes stay below it.
const AttackPID = 66600

func main() {
	data := flag.String("data", "../shared/data/adfa-ld", "ADFA-LD directory")
	out := flag.String("out", "cmd/falco-scorer/demodata/capture.ndjson.gz", "output file")
	train := flag.Int("train", 100, "training traces per image")
	normal := flag.Int("normal", 8, "validation traces per image after learning")
	attacks := flag.Int("attacks", 12, "attack traces in the attacked container")
	flag.Parse()
	if err := run(*data, *out, *train, *normal, *attacks); err != nil {
		fmt.Fprintln(os.Stderr, "mkcapture:", err)
		os.Exit(1)
	}
}

type trace struct {
	img   int
	calls []string
	kind  string // "train", "normal", "attack"
}

func run(data, out string, nTrain, nNormal, nAttack int) error {
	names, err := syscallNames(filepath.Join(data, "syscalls-i386.tsv"))
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 7))
	trainFiles, err := listTraces(filepath.Join(data, "training"))
	if err != nil {
		return err
	}
	valFiles, err := listTraces(filepath.Join(data, "validation"))
	if err != nil {
		return err
	}
	attackFiles, err := listTraces(filepath.Join(data, "attack"))
	if err != nil {
		return err
	}
	rng.Shuffle(len(trainFiles), func(i, j int) { trainFiles[i], trainFiles[j] = trainFiles[j], trainFiles[i] })
	rng.Shuffle(len(valFiles), func(i, j int) { valFiles[i], valFiles[j] = valFiles[j], valFiles[i] })
	rng.Shuffle(len(attackFiles), func(i, j int) { attackFiles[i], attackFiles[j] = attackFiles[j], attackFiles[i] })

	var learn, monitor []trace
	for i := range images {
		for k := 0; k < nTrain; k++ {
			t, err := readTrace(trainFiles[i*nTrain+k], names)
			if err != nil {
				return err
			}
			learn = append(learn, trace{img: i, calls: t, kind: "train"})
		}
		for k := 0; k < nNormal; k++ {
			t, err := readTrace(valFiles[i*nNormal+k], names)
			if err != nil {
				return err
			}
			monitor = append(monitor, trace{img: i, calls: t, kind: "normal"})
		}
	}
	var attack []trace
	for k := 0; k < nAttack; k++ {
		t, err := readTrace(attackFiles[k], names)
		if err != nil {
			return err
		}
		attack = append(attack, trace{img: attacked, calls: t, kind: "attack"})
	}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	bw := bufio.NewWriter(zw)
	g := &gen{w: bw, t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), pid: 1000, rng: rng}

	// Learning: traces of all images interleaved, two processes at a time per image.
	g.interleave(learn)
	// A Falco alert during normal operation, on a healthy container.
	g.falco(0, "Read sensitive file untrusted", "Warning", "cat", []string{"T1555", "container", "filesystem", "mitre_credential_access"})
	g.interleave(monitor)
	// The attack: a shell, then the attack traces in checkout-api's container.
	g.falco(attacked, "Terminal shell in container", "Notice", "bash", []string{"T1059", "container", "mitre_execution", "shell"})
	// Attack processes get pids from AttackPID up, so the demo and its test
	// can tell a detected attack from a false alarm.
	g.pid = AttackPID
	g.interleave(attack)
	g.falco(attacked, "Read sensitive file untrusted", "Warning", "bash", []string{"T1555", "container", "filesystem", "mitre_credential_access"})
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mkcapture: %d events (%d learning traces, %d normal, %d attack) → %s\n", g.n, len(learn), len(monitor), len(attack), out)
	return nil
}

type gen struct {
	w   *bufio.Writer
	t   time.Time
	pid int
	n   int
	rng *rand.Rand
}

func containerID(img int) string { return fmt.Sprintf("%012x", 0x4e5c1a2b3c00+img*0x1111) }

// interleave emits the traces as processes running side by side: each step
// takes the next call of a random live process.
func (g *gen) interleave(ts []trace) {
	type live struct {
		t   trace
		i   int
		pid int
	}
	var running []*live
	next := 0
	for next < len(ts) || len(running) > 0 {
		for len(running) < 4 && next < len(ts) {
			g.pid += 1 + g.rng.IntN(8)
			running = append(running, &live{t: ts[next], pid: g.pid})
			next++
		}
		k := g.rng.IntN(len(running))
		l := running[k]
		g.observe(l.t.img, l.pid, l.t.calls[l.i])
		l.i++
		if l.i == len(l.t.calls) {
			g.observe(l.t.img, l.pid, "procexit")
			running = append(running[:k], running[k+1:]...)
		}
	}
}

func (g *gen) tick() string {
	g.t = g.t.Add(time.Duration(50+g.rng.IntN(400)) * time.Microsecond)
	return g.t.Format(time.RFC3339Nano)
}

func (g *gen) fields(img, pid int, proc string) map[string]any {
	im := images[img]
	f := map[string]any{
		"container.id":               containerID(img),
		"container.name":             im.app,
		"container.image.repository": im.repo,
		"container.image.tag":        im.tag,
		"k8s.ns.name":                im.ns,
		"k8s.pod.name":               im.app + "-7d9f6c5b4-x2k8q",
		"proc.name":                  proc,
		"proc.pid":                   pid,
		"proc.ppid":                  1,
		"user.name":                  im.user,
	}
	if im.digest != "" {
		f["container.image.digest"] = im.digest
	}
	return f
}

func (g *gen) observe(img, pid int, call string) {
	f := g.fields(img, pid, images[img].proc)
	f["evt.type"] = call
	ev := map[string]any{
		"hostname":      "node-1",
		"output":        fmt.Sprintf("falco-scorer observation evt_type=%s container_id=%s pid=%d", call, containerID(img), pid),
		"priority":      "Debug",
		"rule":          "falco-scorer process observation",
		"source":        "syscall",
		"tags":          []string{"container", "falco_scorer", "falco_scorer_observation", "process"},
		"time":          g.tick(),
		"output_fields": f,
	}
	g.write(ev)
}

func (g *gen) falco(img int, rule, prio, proc string, tags []string) {
	g.pid += 7
	f := g.fields(img, g.pid, proc)
	f["evt.type"] = "execve"
	f["proc.cmdline"] = proc
	ts := g.tick()
	ev := map[string]any{
		"hostname": "node-1",
		"output": fmt.Sprintf("%s: %s %s (user=%s container_id=%s image=%s:%s proc=%s)", ts, prio, rule,
			images[img].user, containerID(img), images[img].repo, images[img].tag, proc),
		"priority":      prio,
		"rule":          rule,
		"source":        "syscall",
		"tags":          tags,
		"time":          ts,
		"output_fields": f,
	}
	g.write(ev)
}

func (g *gen) write(ev map[string]any) {
	b, _ := json.Marshal(ev)
	g.w.Write(b)
	g.w.WriteByte('\n')
	g.n++
}

func syscallNames(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) >= 2 {
			m[parts[0]] = parts[1]
		}
	}
	return m, nil
}

func listTraces(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".txt") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func readTrace(path string, names map[string]string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range strings.Fields(string(b)) {
		if _, err := strconv.Atoi(w); err != nil {
			return nil, fmt.Errorf("%s: not a number: %q", path, w)
		}
		n, ok := names[w]
		if !ok {
			n = "syscall_" + w
		}
		out = append(out, n)
	}
	return out, nil
}
