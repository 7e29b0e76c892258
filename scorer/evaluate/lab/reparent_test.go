package lab

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// convertText converts inline traces of one container "c".
func convertText(t *testing.T, traces ...string) []Event {
	t.Helper()
	m := &Manifest{
		Version: 1, Hostname: "h", TestStart: time.Unix(0, 0),
		Containers: []ContainerSpec{{Key: "c", ID: "c0ffee000001", Name: "c", Repository: "r", Tag: "1"}},
		Users:      map[int]string{0: "root"},
	}
	c := NewConverter(m)
	for i, tr := range traces {
		calls, bad, err := parseTrace(strings.NewReader(tr))
		if err != nil || bad != 0 {
			t.Fatalf("trace %d: bad %d, err %v", i, bad, err)
		}
		spec := TraceSpec{File: string(rune('a' + i)), Container: "c", Exec: i > 0}
		m.Traces = append(m.Traces, spec)
		c.Add(spec, calls, bad)
	}
	return c.Finish()
}

func TestOrphanIsReparentedToContainerInit(t *testing.T) {
	events := convertText(t, `1 1.000000 execve("/usr/bin/init", ["init"], 0x0 /* 1 vars */) = 0
1 9.000000 +++ exited with 0 +++
`, `10 2.000000 execve("/bin/sh", ["sh", "-c", "x &"], 0x0 /* 1 vars */) = 0
10 2.100000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 11
10 2.200000 +++ exited with 0 +++
11 2.300000 execve("/tmp/x", ["/tmp/x"], 0x0 /* 1 vars */) = 0
11 2.400000 +++ exited with 0 +++
`)
	var got []string
	for _, e := range events {
		f := e.OutputFields
		got = append(got, f["evt.type"].(string)+" "+f["proc.name"].(string)+" parent="+f["proc.pname"].(string))
	}
	want := []string{
		"execve init parent=containerd-shim",
		"execve sh parent=containerd-shim",
		"clone sh parent=containerd-shim",
		"procexit sh parent=containerd-shim",
		"execve x parent=init", // its parent exited: the container's init adopted it
		"procexit x parent=init",
		"procexit init parent=containerd-shim",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line string
		want       call
		ok         bool
	}{
		{"padded", `5 1.000001 setuid(33)   = 0`, call{tid: 5, us: 1000001, name: "setuid", ret: 0}, true},
		{"errno", `5 1.000001 openat(AT_FDCWD</x>, "a", O_RDONLY) = -1 ENOENT (No such file or directory)`, call{tid: 5, us: 1000001, name: "openat", ret: -1, errno: "ENOENT"}, true},
		{"tuple", `5 1.000001 accept4(3<TCP:[1.2.3.4:80]>, NULL, NULL, SOCK_CLOEXEC) = 7<TCP:[1.2.3.4:80->5.6.7.8:999]>`, call{tid: 5, us: 1000001, name: "accept4", ret: 7, retAnn: "TCP:[1.2.3.4:80->5.6.7.8:999]"}, true},
		{"unknown", `5 1.000001 exit_group(0)                 = ?`, call{tid: 5, us: 1000001, name: "exit_group", ret: unknownRet}, true},
		{"exit", `5 1.000001 +++ killed by SIGKILL +++`, call{tid: 5, us: 1000001, exit: true}, true},
		{"signal", `5 1.000001 --- SIGCHLD {si_signo=SIGCHLD} ---`, call{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseLine(tt.line, map[int]string{})
			if err != nil || ok != tt.ok {
				t.Fatalf("parseLine(%q) ok=%v err=%v, want ok=%v", tt.line, ok, err, tt.ok)
			}
			if !ok {
				return
			}
			got.args, got.raw = nil, ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseLine(%q) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

func FuzzParseTrace(f *testing.F) {
	f.Add("1 1.000000 execve(\"/bin/sh\", [\"sh\"], 0x0) = 0\n1 1.000001 +++ exited with 0 +++\n")
	f.Add("2 1.000000 vfork( <unfinished ...>\n3 1.000001 <... vfork resumed>) = 3\n")
	f.Add("4 1.000000 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr(\"1.2.3.4\")}, 16) = 0\n4 1.1 close(3<TCP:[a:1->b:2]>) = 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		calls, _, err := parseTrace(strings.NewReader(s))
		if err != nil {
			return
		}
		m := &Manifest{Version: 1, Containers: []ContainerSpec{{Key: "c", ID: "c"}}, Traces: []TraceSpec{{File: "a", Container: "c"}}}
		c := NewConverter(m)
		c.Add(m.Traces[0], calls, 0)
		for _, e := range c.Finish() {
			if e.OutputFields["container.id"] != "c" {
				t.Fatalf("event without its container: %v", e.OutputFields)
			}
		}
	})
}
