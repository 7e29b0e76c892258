package symbol

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSymbolGolden(t *testing.T) {
	s, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    Observation
		want string
	}{
		{"exec system binary", Observation{EvtType: "execve", Res: "SUCCESS", ExePath: "/usr/bin/curl"}, "execve /usr/bin/curl"},
		{"execveat", Observation{EvtType: "execveat", ExePath: "/usr/sbin/nginx"}, "execve /usr/sbin/nginx"},
		{"exec dropped binary", Observation{EvtType: "execve", Res: "SUCCESS", ExePath: "/tmp/.x8f3a/kworker"}, "execve /tmp/*"},
		{"exec dropped binary flat", Observation{EvtType: "execve", ExePath: "/dev/shm/miner"}, "execve /dev/shm/*"},
		{"exec versioned dir kept", Observation{EvtType: "execve", ExePath: "/usr/lib/python3.11/venv/bin/python3"}, "execve /usr/lib/python3.11/venv/bin/python3"},
		{"exec hash dir abstracted", Observation{EvtType: "execve", ExePath: "/app/releases/4f9a1c2b7d/bin/server"}, "execve /app/releases/*/bin/server"},
		{"exec failed", Observation{EvtType: "execve", Res: "ENOENT", ExePath: "/bin/sh"}, "execve failed"},
		{"exec relative", Observation{EvtType: "execve", ExePath: "python"}, "execve ?"},
		{"clone3", Observation{EvtType: "clone3", Res: "4242"}, "clone"},
		{"vfork", Observation{EvtType: "vfork", Res: "12"}, "clone"},
		{"procexit", Observation{EvtType: "procexit"}, "procexit"},
		{"open write log", Observation{EvtType: "openat", Res: "5", File: "/var/log/nginx/access.log", Flags: "O_WRONLY|O_APPEND|O_CLOEXEC"}, "open write /var/log/nginx/*"},
		{"open create", Observation{EvtType: "openat", Res: "7", File: "/var/lib/redis/temp-2201.rdb", Flags: "O_WRONLY|O_CREAT|O_TRUNC", Mode: "0644"}, "open create /var/lib/redis/*"},
		{"open create exec", Observation{EvtType: "open", Res: "3", File: "/tmp/payload", Flags: "O_WRONLY|O_CREAT", Mode: "0755"}, "open create+x /tmp/*"},
		{"creat", Observation{EvtType: "creat", Res: "3", File: "/tmp/a"}, "open create /tmp/*"},
		{"deep path", Observation{EvtType: "openat", File: "/usr/share/nginx/html/uploads/2026/a.jpg", Flags: "O_RDWR"}, "open write /usr/share/nginx/**/*"},
		{"volatile dirs", Observation{EvtType: "openat", File: "/var/cache/app/9f86d081884c7d65/x", Flags: "O_WRONLY"}, "open write /var/cache/app/**/*"},
		{"pid dir", Observation{EvtType: "openat", File: "/run/app/1234/sock.lock", Flags: "O_WRONLY"}, "open write /run/app/*/*"},
		{"sensitive read exact", Observation{EvtType: "openat", Res: "3", File: "/etc/shadow", Flags: "O_RDONLY|O_CLOEXEC"}, "open read /etc/shadow"},
		{"token read", Observation{EvtType: "openat", File: "/var/run/secrets/kubernetes.io/serviceaccount/token", Flags: "O_RDONLY"}, "open read /var/run/secrets/kubernetes.io/serviceaccount/token"},
		{"root file", Observation{EvtType: "openat", File: "/root/.ssh/authorized_keys", Flags: "O_WRONLY|O_APPEND"}, "open write /root/.ssh/authorized_keys"},
		{"not sensitive prefix twin", Observation{EvtType: "openat", File: "/rootfs/x", Flags: "O_WRONLY"}, "open write /rootfs/*"},
		{"top-level file", Observation{EvtType: "openat", File: "/x", Flags: "O_WRONLY"}, "open write /*"},
		{"open no path", Observation{EvtType: "openat", Flags: "O_WRONLY"}, "open write ?"},
		{"open failed", Observation{EvtType: "openat", Res: "EACCES", File: "/etc/passwd", Flags: "O_WRONLY"}, "open write /etc/* failed"},
		{"chmod +x", Observation{EvtType: "fchmodat", Res: "SUCCESS", Path: "/tmp/payload", Mode: "0755"}, "chmod /tmp/* +x"},
		{"chmod", Observation{EvtType: "chmod", Path: "/srv/data/f", Mode: "0640"}, "chmod /srv/data/*"},
		{"unlinkat", Observation{EvtType: "unlinkat", Path: "/var/log/app/old.log.1"}, "unlink /var/log/app/*"},
		{"renameat2", Observation{EvtType: "renameat2", Path: "/etc/cron.d/job"}, "rename /etc/cron.d/*"},
		{"mkdirat", Observation{EvtType: "mkdirat", Path: "/tmp/.hidden"}, "mkdir /tmp/*"},
		{"connect loopback redis", Observation{EvtType: "connect", Res: "SUCCESS", File: "127.0.0.1:40312->127.0.0.1:6379"}, "connect loopback:6379"},
		{"connect external", Observation{EvtType: "connect", Res: "EINPROGRESS", File: "10.0.0.5:51000->93.184.216.34:4444"}, "connect external:4444"},
		{"connect cluster ephemeral", Observation{EvtType: "connect", File: "10.0.0.5:51000->10.96.0.10:40000"}, "connect cluster:ephemeral"},
		{"connect refused", Observation{EvtType: "connect", Res: "ECONNREFUSED", File: "127.0.0.1:51000->127.0.0.1:22"}, "connect loopback:22 failed"},
		{"connect ipv6", Observation{EvtType: "connect", File: "::1:40312->::1:6379"}, "connect loopback:6379"},
		{"connect cgnat", Observation{EvtType: "connect", File: "100.64.1.2:40312->100.64.3.4:443"}, "connect cluster:443"},
		{"accept", Observation{EvtType: "accept4", Res: "9", File: "127.0.0.1:51234->127.0.0.1:8080"}, "accept :8080 from loopback"},
		{"accept cluster", Observation{EvtType: "accept", File: "10.1.2.3:51234->10.1.2.4:80"}, "accept :80 from cluster"},
		{"bind any", Observation{EvtType: "bind", File: "0.0.0.0:6379"}, "bind :6379"},
		{"listen loopback", Observation{EvtType: "listen", File: "127.0.0.1:8080"}, "listen loopback:8080"},
		{"connect no fd", Observation{EvtType: "connect"}, "connect ?"},
		{"setuid root", Observation{EvtType: "setuid", Res: "SUCCESS", UID: "0"}, "setuid root"},
		{"setresuid user", Observation{EvtType: "setresuid", Res: "SUCCESS", UID: "33"}, "setresuid user"},
		{"setuid failed", Observation{EvtType: "setuid", Res: "EPERM", UID: "33"}, "setuid failed"},
		{"unshare failed", Observation{EvtType: "unshare", Res: "EPERM"}, "unshare failed"},
		{"mount", Observation{EvtType: "mount", Res: "SUCCESS"}, "mount"},
		{"no type", Observation{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Symbol(&c.o); got != c.want {
				t.Errorf("Symbol(%+v) = %q, want %q", c.o, got, c.want)
			}
		})
	}
}

func TestModeTypeIsEvtType(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeType
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := Observation{EvtType: "openat", File: "/etc/shadow", Flags: "O_RDONLY"}
	if got := s.Symbol(&o); got != "openat" {
		t.Errorf("Symbol = %q, want openat", got)
	}
}

func TestExecParent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExecParent = true
	s, _ := New(cfg)
	o := Observation{EvtType: "execve", ExePath: "/usr/bin/curl", ParentName: "sh"}
	if got, want := s.Symbol(&o), "execve /usr/bin/curl < sh"; got != want {
		t.Errorf("Symbol = %q, want %q", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := DefaultConfig()
	bad.Mode = "raw"
	bad.PathDepth = 0
	bad.SensitivePaths = []string{"etc/shadow"}
	err := bad.Validate()
	for _, want := range []string{"mode:", "path_depth:", "sensitive_paths[0]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if DefaultConfig().Fingerprint() == bad.Fingerprint() {
		t.Error("different configs share a fingerprint")
	}
}

// FuzzSymbol: arbitrary fields never panic and give a short, valid UTF-8,
// printable symbol that starts with a known call name.
func FuzzSymbol(f *testing.F) {
	f.Add("connect", "SUCCESS", "/usr/bin/curl", "127.0.0.1:1->10.0.0.1:443", "", "O_WRONLY", "0755")
	f.Add("openat", "3", "/x", "/tmp/\xff\xfe/a", "", "O_CREAT", "0777")
	f.Add("execve", "-2", "/tmp/../../x", "", "", "", "")
	f.Add("accept4", "5", "", "[::1]:80->[::1]:8080", "", "", "")
	f.Add("bind", "0", "", ":::8080", "", "", "")
	f.Add("chmod", "SUCCESS", "", "", "/a//b/./c", "", "S_IXUSR")
	s, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, evtType, res, exe, file, path, flags, mode string) {
		o := Observation{EvtType: evtType, Res: res, ExePath: exe, File: file, Path: path, Flags: flags, Mode: mode, UID: res, ParentName: exe}
		got := s.Symbol(&o)
		if evtType == "" {
			if got != "" {
				t.Fatalf("no evt.type gave %q", got)
			}
			return
		}
		if len(got) > maxSymbol {
			t.Fatalf("symbol of %d bytes > %d", len(got), maxSymbol)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 symbol %q", got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in symbol %q", got)
			}
		}
	})
}

func BenchmarkSymbol(b *testing.B) {
	s, _ := New(DefaultConfig())
	obs := []Observation{
		{EvtType: "openat", Res: "5", File: "/var/log/nginx/access.log", Flags: "O_WRONLY|O_APPEND|O_CLOEXEC"},
		{EvtType: "connect", Res: "SUCCESS", File: "127.0.0.1:40312->127.0.0.1:6379"},
		{EvtType: "execve", Res: "SUCCESS", ExePath: "/usr/bin/curl"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.Symbol(&obs[i%len(obs)])
	}
}
