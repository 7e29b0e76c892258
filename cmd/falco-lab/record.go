package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed" // lab assets
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
)

var (
	//go:embed assets/app.py
	appPy []byte
	//go:embed assets/worker.sh
	workerSh []byte
	//go:embed assets/nginx.conf
	nginxConf string
	//go:embed assets/redis.conf
	redisConf string
)

// Loopback addresses of the lab. Nothing binds outside 127.0.0.0/8.
const (
	webAddr      = "127.0.0.2:8080"
	apiAddr      = "127.0.0.3:8000"
	redisAddr    = "127.0.0.4:6379"
	flagsAddr    = "127.0.0.5:9100"
	attackerHTTP = "127.0.0.9:8081"
	attackerTCP  = "127.0.0.9:4444"
)

var poolAddrs = []string{"127.0.0.9:3333", "127.0.0.9:14444"}

type recordConfig struct {
	Raw   string
	Root  string
	Learn time.Duration
	Test  time.Duration
	Seed  int64
	Rate  int
}

func defaultRecordConfig() recordConfig {
	return recordConfig{
		Raw:   "/var/tmp/falco-lab/raw",
		Root:  "/var/lib/falco-lab",
		Learn: 4 * time.Minute,
		Test:  4 * time.Minute,
		Seed:  1,
		Rate:  14,
	}
}

// recorder holds the state of one recording.
type recorder struct {
	cfg  recordConfig
	rng  *rand.Rand
	mu   sync.Mutex
	man  lab.Manifest
	seq  map[string]int
	svcs map[string]*service // by container key
	cur  map[string]string   // image base ("redis") -> key of its running container
	log  *os.File
}

// service is a traced long-running process (a container's main process).
type service struct {
	key    string
	strace *exec.Cmd
	done   chan struct{}
}

func containerID(key string) string {
	h := sha256.Sum256([]byte("falco-lab/container/" + key))
	return hex.EncodeToString(h[:6])
}

func digest(repo string) string {
	h := sha256.Sum256([]byte("falco-lab/image/" + repo))
	return "sha256:" + hex.EncodeToString(h[:])
}

func podSuffix(key string) string {
	h := sha256.Sum256([]byte("falco-lab/pod/" + key))
	return hex.EncodeToString(h[:5])
}

func record(ctx context.Context, cfg recordConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("record: needs root (strace, setuid services, lab root)")
	}
	for _, bin := range []string{"strace", "/usr/sbin/nginx", "/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/python3.11", "/usr/bin/curl", "/usr/bin/setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("record: %s not found (apt-get install -y strace nginx redis-server python3 curl)", bin)
		}
	}
	r := &recorder{cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 17)), seq: map[string]int{}, svcs: map[string]*service{}, cur: map[string]string{}}
	if err := r.prepare(); err != nil {
		return err
	}
	defer r.cleanupHost()
	var err error
	r.log, err = os.Create(filepath.Join(cfg.Raw, "recorder.log"))
	if err != nil {
		return err
	}
	defer r.log.Close()

	hostname, _ := os.Hostname()
	r.man = lab.Manifest{Version: 1, Hostname: "lab-" + hostname, Users: readUsers(), RootfsPrefix: filepath.Join(cfg.Root, "rootfs")}

	stopHelpers, err := r.startHelpers(ctx)
	if err != nil {
		return err
	}
	defer stopHelpers()

	r.man.LearnStart = time.Now().UTC()
	if err := r.startAll(ctx); err != nil {
		r.stopAll()
		return err
	}
	err = r.phases(ctx)
	r.stopAll()
	r.man.End = time.Now().UTC()
	if werr := r.writeManifest(); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

func (r *recorder) logf(format string, args ...any) {
	line := fmt.Sprintf("%s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, args...)...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil {
		_, _ = r.log.WriteString(line)
	}
	fmt.Fprint(os.Stderr, line)
}

// prepare empties and fills the raw directory and the lab root.
func (r *recorder) prepare() error {
	root := r.cfg.Root
	if !strings.HasPrefix(root, "/var/lib/") && !strings.HasPrefix(root, "/tmp/") && !strings.HasPrefix(root, "/var/tmp/") {
		return fmt.Errorf("record: root: %q, want a directory under /var/lib, /tmp or /var/tmp (it is emptied)", root)
	}
	for _, d := range []string{r.cfg.Raw, root} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	dirs := []string{
		r.cfg.Raw,
		"app/uploads", "app/log", "app/exports", "nginx/log", "nginx/tmp", "nginx/www/static", "redis", "cron",
		"rootfs/etc/cron.d", "rootfs/etc/init.d", "rootfs/etc/rc2.d", "rootfs/etc/systemd/system/multi-user.target.wants",
		"rootfs/etc/profile.d", "rootfs/root", "rootfs/var/spool/cron/crontabs", "rootfs/home", "attacker",
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	rep := func(s string) []byte { return []byte(strings.ReplaceAll(s, "{{ROOT}}", root)) }
	files := map[string][]byte{
		"app/app.py":                   appPy,
		"cron/worker.sh":               workerSh,
		"nginx/nginx.conf":             rep(nginxConf),
		"redis/redis.conf":             rep(redisConf),
		"nginx/www/index.html":         []byte("<html><head><link rel=stylesheet href=/static/site.css></head><body>shop</body></html>\n"),
		"nginx/www/static/site.css":    []byte("body{font-family:sans-serif}\n"),
		"nginx/www/static/app.js":      bytes.Repeat([]byte("console.log('shop');\n"), 200),
		"nginx/www/static/logo.png":    bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 2000),
		"attacker/payload.sh":          []byte("#!/bin/sh\nid\nuname -a\ncat /etc/hostname\nls /tmp >/dev/null\n"),
		"rootfs/etc/profile":           []byte("# lab copy\n"),
		"rootfs/root/.bashrc":          []byte("# lab copy\n"),
		"rootfs/etc/crontab":           []byte("# lab copy\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n"),
		"rootfs/etc/login.defs":        []byte("UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n"),
		"rootfs/etc/default/useradd":   []byte("SHELL=/bin/sh\n"),
		"rootfs/etc/sudoers":           []byte("root ALL=(ALL:ALL) ALL\n"),
		"rootfs/etc/ssh/sshd_config":   []byte("PermitRootLogin no\n"),
		"rootfs/etc/ssh/ssh_host_key":  []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nlab\n-----END OPENSSH PRIVATE KEY-----\n"),
		"rootfs/var/run/secrets/token": []byte("lab-token\n"),
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			return err
		}
	}
	// The fake rootfs's account files are copies of the host's (the account
	// manipulation attacks write these, never the real ones).
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.Contains(f, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(root, "rootfs/etc", f), b, mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "rootfs/var/spool/cron/crontabs"), 0o1733); err != nil {
		return err
	}
	// A service-account token where Kubernetes mounts one (a path the rules
	// treat as sensitive). /run is a tmpfs; removed by cleanupHost.
	tok := "/run/secrets/kubernetes.io/serviceaccount"
	if err := os.MkdirAll(tok, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tok+"/token", []byte("eyJhbGciOiJSUzI1NiJ9.lab.token\n"), 0o644); err != nil {
		return err
	}
	// Service users own their data.
	if err := chownR(filepath.Join(root, "redis"), "redis"); err != nil {
		return err
	}
	return nil
}

func chownR(dir, user string) error {
	uid, gid, err := lookupUser(user)
	if err != nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func lookupUser(name string) (int, int, error) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == name {
			uid, _ := strconv.Atoi(f[2])
			gid, _ := strconv.Atoi(f[3])
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("user %s: not in /etc/passwd", name)
}

func readUsers() map[int]string {
	users := map[int]string{}
	b, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 {
			if uid, err := strconv.Atoi(f[2]); err == nil {
				users[uid] = f[0]
			}
		}
	}
	return users
}

// cleanupHost removes what the lab created outside its root and raw dir.
func (r *recorder) cleanupHost() {
	_ = os.RemoveAll("/run/secrets/kubernetes.io")
	_ = os.Remove("/run/secrets") // only if empty: it may have been there before
	for _, p := range []string{"/tmp/.u1", "/tmp/.cache-x", "/tmp/.kworkerd", "/var/tmp/.cache", "/var/tmp/payload.sh", "/dev/shm/k", "/dev/shm/.m",
		"/tmp/.x", "/tmp/.t", "/tmp/.k.ko", "/tmp/.X11-unix-m", "/tmp/.bash_history"} {
		_ = os.RemoveAll(p)
	}
}

// addContainer registers a container (idempotent) and returns its spec.
func (r *recorder) addContainer(key string) lab.ContainerSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.man.Containers {
		if c.Key == key {
			return c
		}
	}
	base := strings.SplitN(key, "-", 2)[0]
	var c lab.ContainerSpec
	switch base {
	case "web":
		c = lab.ContainerSpec{Name: "web", Repository: "docker.io/library/nginx", Tag: "1.22.1", Namespace: "shop", Pod: "web-7f9c4d-" + podSuffix(key)}
	case "api":
		c = lab.ContainerSpec{Name: "api", Repository: "ghcr.io/falco-lab/shop-api", Tag: "1.4.0", Namespace: "shop", Pod: "api-5b8d6f-" + podSuffix(key)}
	case "redis":
		c = lab.ContainerSpec{Name: "redis", Repository: "docker.io/library/redis", Tag: "7.0.15", Namespace: "shop", Pod: "redis-0"}
	case "cron":
		c = lab.ContainerSpec{Name: "cron", Repository: "ghcr.io/falco-lab/shop-cron", Tag: "1.0.0", Namespace: "shop", Pod: "cron-6c7b9-" + podSuffix(key)}
	default:
		panic("unknown container " + key)
	}
	c.Key, c.ID, c.Digest = key, containerID(key), digest(c.Repository)
	r.man.Containers = append(r.man.Containers, c)
	return c
}

// traceFile allocates the next trace file name of a container.
func (r *recorder) traceFile(container string, exec bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind := "main"
	if exec {
		kind = "exec"
	}
	r.seq[container+kind]++
	name := fmt.Sprintf("%s.%s-%03d.strace", container, kind, r.seq[container+kind])
	r.man.Traces = append(r.man.Traces, lab.TraceSpec{File: name, Container: container, Exec: exec})
	return name
}

func straceArgs(out string, argv ...string) []string {
	return append([]string{"-f", "-ttt", "-q", "-yy", "-s", "256", "-e", "signal=none", "-e", "trace=" + strings.Join(lab.StraceCalls(), ","), "-o", out, "--"}, argv...)
}

// startService runs argv under strace as the main process of container key.
func (r *recorder) startService(key string, env []string, argv ...string) (*service, error) {
	r.addContainer(key)
	file := r.traceFile(key, false)
	cmd := exec.Command("strace", straceArgs(filepath.Join(r.cfg.Raw, file), argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = r.cfg.Root
	logf, err := os.Create(filepath.Join(r.cfg.Raw, file+".out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", key, err)
	}
	s := &service{key: key, strace: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	r.mu.Lock()
	r.svcs[key] = s
	r.cur[strings.SplitN(key, "-", 2)[0]] = key
	r.mu.Unlock()
	r.logf("started %s (%s) strace pid %d", key, file, cmd.Process.Pid)
	return s, nil
}

// tracee returns the pid of the process strace started.
func (s *service) tracee() int {
	for range 50 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.strace.Process.Pid, s.strace.Process.Pid))
		if err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				pid, _ := strconv.Atoi(f[0])
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// stop sends sig to the traced service and waits (bounded) for strace to end.
func (s *service) stop(sig syscall.Signal, wait time.Duration) {
	if pid := s.tracee(); pid > 0 {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-s.done:
		return
	case <-time.After(wait):
	}
	if pid := s.tracee(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.strace.Process.Kill()
		<-s.done
	}
}

func waitTCP(ctx context.Context, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: not listening after %s", addr, d)
}

func (r *recorder) startRedis(ctx context.Context, key string) error {
	if _, err := r.startService(key, nil, "/usr/bin/setpriv", "--reuid=redis", "--regid=redis", "--init-groups",
		"/usr/bin/redis-server", filepath.Join(r.cfg.Root, "redis/redis.conf")); err != nil {
		return err
	}
	return waitTCP(ctx, redisAddr, 10*time.Second)
}

func (r *recorder) startAPI(ctx context.Context, key, python string, extraEnv ...string) error {
	env := append([]string{"APP_BIND=" + apiAddr, "REDIS_ADDR=" + redisAddr, "APP_ROOT=" + filepath.Join(r.cfg.Root, "app"), "WORKERS=3", "MAX_REQUESTS=150", "PYTHONDONTWRITEBYTECODE=1"}, extraEnv...)
	if _, err := r.startService(key, env, python, filepath.Join(r.cfg.Root, "app/app.py")); err != nil {
		return err
	}
	return waitTCP(ctx, apiAddr, 10*time.Second)
}

func (r *recorder) startAll(ctx context.Context) error {
	if err := r.startRedis(ctx, "redis"); err != nil {
		return err
	}
	if err := r.startAPI(ctx, "api", "/usr/bin/python3.11"); err != nil {
		return err
	}
	if _, err := r.startService("web", nil, "/usr/sbin/nginx", "-c", filepath.Join(r.cfg.Root, "nginx/nginx.conf")); err != nil {
		return err
	}
	if err := waitTCP(ctx, webAddr, 10*time.Second); err != nil {
		return err
	}
	_, err := r.startService("cron", []string{"LAB_ROOT=" + r.cfg.Root, "WEB=" + webAddr, "ITERATIONS=5000", "PERIOD=1"}, "/bin/bash", filepath.Join(r.cfg.Root, "cron/worker.sh"))
	return err
}

func (r *recorder) stopAll() {
	r.mu.Lock()
	svcs := make([]*service, 0, len(r.svcs))
	for _, s := range r.svcs {
		svcs = append(svcs, s)
	}
	r.mu.Unlock()
	for _, s := range svcs {
		select {
		case <-s.done:
			continue
		default:
		}
		sig := syscall.SIGTERM
		if strings.HasPrefix(s.key, "web") {
			sig = syscall.SIGQUIT // nginx graceful shutdown
		}
		s.stop(sig, 8*time.Second)
		r.logf("stopped %s", s.key)
	}
}

// execIn runs script with /bin/sh -c under strace as an "exec into the
// container" (kubectl exec) and returns the trace file name. Bounded by
// timeout.
func (r *recorder) execIn(ctx context.Context, container, script string, timeout time.Duration) (string, time.Time, time.Time, error) {
	r.mu.Lock()
	if k, ok := r.cur[container]; ok {
		container = k // the running container of that image (after a restart or rollout)
	}
	r.mu.Unlock()
	file := r.traceFile(container, true)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "strace", straceArgs(filepath.Join(r.cfg.Raw, file), "/bin/sh", "-c", script)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LAB=" + r.cfg.Root, "R=" + filepath.Join(r.cfg.Root, "rootfs"), "TERM=xterm"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 3 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now().UTC()
	err := cmd.Run()
	end := time.Now().UTC()
	r.logf("exec %s (%s): err=%v out=%q", container, file, err, truncate(out.String(), 300))
	return file, start, end, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// debugExec runs script through the API's vulnerable endpoint (via nginx):
// it runs as /bin/sh -c, a child of an API worker. Returns the child's pid.
func (r *recorder) debugExec(ctx context.Context, script string) (int, time.Time, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	defer cancel()
	start := time.Now().UTC()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+webAddr+"/debug/exec", strings.NewReader(script))
	if err != nil {
		return 0, start, start, err
	}
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, start, time.Now().UTC(), err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	end := time.Now().UTC()
	var ans struct {
		PID int `json:"pid"`
		RC  int `json:"rc"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.PID == 0 {
		return 0, start, end, fmt.Errorf("debug exec: answer %q: %v", truncate(string(b), 200), err)
	}
	r.logf("debug exec pid %d rc %d", ans.PID, ans.RC)
	return ans.PID, start, end, nil
}

func (r *recorder) addRun(run lab.RunSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.man.Runs = append(r.man.Runs, run)
}

func (r *recorder) writeManifest() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Drop the traces of execs that never started (the recorder was stopping).
	r.man.Traces = slices.DeleteFunc(r.man.Traces, func(t lab.TraceSpec) bool {
		_, err := os.Stat(filepath.Join(r.cfg.Raw, t.File))
		return err != nil
	})
	b, err := json.MarshalIndent(r.man, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.cfg.Raw, "manifest.json"), b, 0o644)
}

// startHelpers starts the untraced loopback peers: the attacker's HTTP server
// (payloads, exfiltration), its shell listener, the "mining pools", and the
// feature-flag service the API's v2 rollout calls. They are host processes
// outside every container, as a real attacker's servers would be.
func (r *recorder) startHelpers(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var closers []io.Closer
	listen := func(addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			closers = append(closers, l)
		}
		return l, err
	}
	payloads := filepath.Join(r.cfg.Root, "attacker")
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(payloads)))
	mux.HandleFunc("/exfil", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/beacon", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("sleep 60\n")) })
	flagsMux := http.NewServeMux()
	flagsMux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"new_checkout":true}`)) })
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{attackerHTTP, mux}, {flagsAddr, flagsMux}} {
		l, err := listen(s.addr)
		if err != nil {
			cancel()
			return nil, err
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		closers = append(closers, srv)
		wg.Go(func() { _ = srv.Serve(l) })
	}
	// Shell listener: sends a few commands, reads until EOF or 8 s.
	l, err := listen(attackerTCP)
	if err != nil {
		cancel()
		return nil, err
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(8 * time.Second))
				_, _ = c.Write([]byte("id\nuname -a\ncat /etc/hostname\nexit\n"))
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				_, _ = io.Copy(io.Discard, bufio.NewReader(io.LimitReader(c, 1<<20)))
			}()
		}
	})
	for _, addr := range poolAddrs {
		pl, err := listen(addr)
		if err != nil {
			cancel()
			return nil, err
		}
		wg.Go(func() {
			for {
				c, err := pl.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(`{"id":1,"jsonrpc":"2.0","result":{"job":"lab"}}` + "\n"))
				c.Close()
			}
		})
	}
	go func() { <-ctx.Done() }()
	return func() {
		cancel()
		for _, c := range closers {
			_ = c.Close()
		}
		wg.Wait()
	}, nil
}
