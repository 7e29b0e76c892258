package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Mix describes the traffic a Generator produces.
type Mix struct {
	Images             int     // distinct container images
	ContainersPerImage int     // containers (pods) running each image
	ProcsPerContainer  int     // live processes per container (one sequence each)
	AlertRatio         float64 // fraction of events that are Falco rule alerts (the rest are observations)
	ExitRate           float64 // probability that an observation ends its process (procexit)
	Seed               uint64
}

// DefaultMix is the traffic of the benchmarks: 200 images in 1,000
// containers, 4 processes each, one event in five a Falco rule alert.
func DefaultMix() Mix {
	return Mix{Images: 200, ContainersPerImage: 5, ProcsPerContainer: 4, AlertRatio: 0.2, ExitRate: 0.0005, Seed: 1}
}

func (m Mix) validate() error {
	switch {
	case m.Images < 1:
		return fmt.Errorf("images: %d, want at least 1", m.Images)
	case m.ContainersPerImage < 1:
		return fmt.Errorf("containers per image: %d, want at least 1", m.ContainersPerImage)
	case m.ProcsPerContainer < 1:
		return fmt.Errorf("processes per container: %d, want at least 1", m.ProcsPerContainer)
	case m.AlertRatio < 0 || m.AlertRatio > 1:
		return fmt.Errorf("alert ratio: %g, want 0..1", m.AlertRatio)
	case m.ExitRate < 0 || m.ExitRate > 1:
		return fmt.Errorf("exit rate: %g, want 0..1", m.ExitRate)
	}
	return nil
}

// Generator builds realistic Falco JSON events (the shape http_output posts)
// for a fleet of containers: observations from falco-scorer's rules (tag
// falco_scorer, evt.type following a per-image syscall program with noise)
// and Falco rule alerts. Every event carries its creation time in "time"
// and, in nanoseconds, in output_fields["evt.time"], so a consumer can
// measure the latency of the whole path. A Generator is not safe for
// concurrent use: Split it to give each sender a share of the fleet.
type Generator struct {
	mix        Mix
	rng        *rand.Rand
	containers []container
	nextPID    int64
}

type container struct {
	prefix  []byte // `{"hostname":..,"output_fields":{ ...static fields..., `
	id      string
	image   int
	program []string // the image's typical syscall cycle
	procs   []proc
}

type proc struct {
	pid  int64
	step int
}

// profiles are syscall programs of typical workloads; each image follows
// one, shifted, and deviates from it with random syscalls from noise.
var profiles = [][]string{
	// web server: accept, read request, open/stat/read a file, write, close
	{"epoll_wait", "accept4", "read", "openat", "fstat", "read", "close", "writev", "epoll_ctl", "close"},
	// HTTP API: network in, backend query over a socket, network out
	{"epoll_wait", "read", "futex", "connect", "sendto", "recvfrom", "futex", "write", "close", "epoll_wait", "read"},
	// database: file I/O and fsync
	{"recvfrom", "pread64", "pread64", "pwrite64", "fdatasync", "sendto", "futex", "lseek", "read"},
	// cache: tight network loop
	{"epoll_wait", "read", "write", "epoll_wait", "read", "write", "epoll_ctl"},
	// batch worker: spawn, mmap, open files
	{"clone", "execve", "brk", "mmap", "openat", "fstat", "mmap", "close", "read", "write", "munmap", "wait4"},
}

// noise is the syscall mix of unexpected steps, with repetitions as weights.
var noise = []string{
	"read", "read", "read", "write", "write", "openat", "openat", "close", "close", "fstat", "mmap",
	"futex", "futex", "epoll_wait", "recvfrom", "sendto", "connect", "socket", "getdents64", "stat",
	"rt_sigaction", "rt_sigprocmask", "nanosleep", "clock_nanosleep", "getpid", "ioctl", "newfstatat",
	"unlink", "rename", "chmod", "setuid", "execve", "clone3", "mprotect", "prctl", "bind", "listen",
}

type falcoRule struct {
	name, priority, text, proc string
	tags                       string // JSON array
}

// rules are well-known Falco rules at Notice or above, so that every alert
// is routed to Kafka by the default routing rules.
var rules = []falcoRule{
	{"Terminal shell in container", "Notice", "A shell was spawned in a container with an attached terminal", "bash",
		`["T1059","container","maturity_stable","mitre_execution","shell"]`},
	{"Read sensitive file untrusted", "Warning", "Sensitive file opened for reading by non-trusted program", "cat",
		`["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"]`},
	{"Drop and execute new binary in container", "Critical", "Executing binary not part of base image", "xmrig",
		`["TA0003","container","maturity_stable","mitre_persistence","process"]`},
	{"Contact K8S API Server From Container", "Notice", "Unexpected connection to K8s API Server from container", "curl",
		`["T1565","container","k8s","maturity_stable","mitre_discovery","network"]`},
	{"Redirect STDOUT/STDIN to Network Connection in Container", "Notice", "Redirect stdout/stdin to network connection", "nc",
		`["T1059","container","maturity_stable","mitre_execution","network","process"]`},
	{"Clear Log Activities", "Warning", "Log files were tampered", "truncate",
		`["T1070","container","filesystem","maturity_stable","mitre_defense_evasion"]`},
	{"Search Private Keys or Passwords", "Warning", "Grep private keys or passwords activities found", "grep",
		`["T1552.001","container","filesystem","host","maturity_stable","mitre_credential_access","process"]`},
	{"Packet socket created in container", "Notice", "Packet socket was created in a container", "tcpdump",
		`["T1557.002","container","maturity_stable","mitre_credential_access","network"]`},
}

var registries = []string{"docker.io/library", "ghcr.io/acme", "quay.io/corp", "registry.k8s.io", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team"}
var apps = []string{"nginx", "checkout-api", "postgres", "redis", "payments", "search", "frontend", "worker", "kafka-connect", "grafana", "auth", "orders"}
var namespaces = []string{"shop", "payments", "data", "monitoring", "platform", "default", "batch", "edge"}

// NewGenerator builds the fleet of m (deterministic for m.Seed).
func NewGenerator(m Mix) (*Generator, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	g := &Generator{mix: m, rng: rand.New(rand.NewPCG(m.Seed, 0x9e3779b97f4a7c15)), nextPID: 1000}
	for img := 0; img < m.Images; img++ {
		app := apps[img%len(apps)]
		repo := registries[img%len(registries)] + "/" + app
		if img >= len(apps) {
			repo += "-" + strconv.Itoa(img/len(apps))
		}
		tag := fmt.Sprintf("1.%d.%d", img%7, img%13)
		var digest string
		if img%3 != 2 { // some images are known by tag only
			digest = fmt.Sprintf("sha256:%016x%016x%016x%016x", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint64())
		}
		ns := namespaces[img%len(namespaces)]
		base := profiles[img%len(profiles)]
		shift := img % len(base)
		program := append(append([]string{}, base[shift:]...), base[:shift]...)
		for c := 0; c < m.ContainersPerImage; c++ {
			id := fmt.Sprintf("%012x", g.rng.Uint64()&0xffffffffffff)
			pod := fmt.Sprintf("%s-%08x-%05x", app, g.rng.Uint32(), g.rng.Uint32()&0xfffff)
			host := "node-" + strconv.Itoa((img*m.ContainersPerImage+c)%8+1)
			var b []byte
			b = append(b, `{"hostname":`...)
			b = strconv.AppendQuote(b, host)
			b = append(b, `,"output_fields":{"container.id":`...)
			b = strconv.AppendQuote(b, id)
			if digest != "" {
				b = append(b, `,"container.image.digest":`...)
				b = strconv.AppendQuote(b, digest)
			}
			b = append(b, `,"container.image.repository":`...)
			b = strconv.AppendQuote(b, repo)
			b = append(b, `,"container.image.tag":`...)
			b = strconv.AppendQuote(b, tag)
			b = append(b, `,"container.name":`...)
			b = strconv.AppendQuote(b, app)
			b = append(b, `,"k8s.ns.name":`...)
			b = strconv.AppendQuote(b, ns)
			b = append(b, `,"k8s.pod.name":`...)
			b = strconv.AppendQuote(b, pod)
			b = append(b, ',')
			ct := container{prefix: b, id: id, image: img, program: program}
			for p := 0; p < m.ProcsPerContainer; p++ {
				ct.procs = append(ct.procs, proc{pid: g.newPID(), step: g.rng.IntN(len(program))})
			}
			g.containers = append(g.containers, ct)
		}
	}
	return g, nil
}

// Split divides the fleet among n generators, each owning a disjoint set of
// containers (round robin) and its own random source, so that n senders
// together send the traffic of one fleet: the same images, containers and
// processes whatever n is, and every process driven by one sender. With
// fewer containers than n, every generator gets the whole fleet.
func (g *Generator) Split(n int) []*Generator {
	out := make([]*Generator, n)
	for i := range out {
		sub := &Generator{mix: g.mix, rng: rand.New(rand.NewPCG(g.mix.Seed, uint64(i)+1)),
			nextPID: 1000 + int64(i)*(4_000_000/int64(n))}
		for k := range g.containers {
			if len(g.containers) >= n && k%n != i {
				continue
			}
			c := g.containers[k]
			c.procs = append([]proc(nil), c.procs...)
			sub.containers = append(sub.containers, c)
		}
		out[i] = sub
	}
	return out
}

func (g *Generator) newPID() int64 {
	g.nextPID += 1 + int64(g.rng.IntN(50))
	if g.nextPID > 4_000_000 {
		g.nextPID = 1000
	}
	return g.nextPID
}

// Append appends one event created at now to dst and reports whether it is
// a Falco rule alert (which the scorer always forwards) rather than an
// observation.
func (g *Generator) Append(dst []byte, now time.Time) ([]byte, bool) {
	c := &g.containers[g.rng.IntN(len(g.containers))]
	if g.rng.Float64() < g.mix.AlertRatio {
		return g.appendAlert(dst, c, now), true
	}
	return g.appendObservation(dst, c, now), false
}

func (g *Generator) appendObservation(dst []byte, c *container, now time.Time) []byte {
	p := &c.procs[g.rng.IntN(len(c.procs))]
	var sym string
	exit := false
	switch r := g.rng.Float64(); {
	case r < g.mix.ExitRate:
		sym, exit = "procexit", true
	case r < 0.05:
		sym = noise[g.rng.IntN(len(noise))]
	default:
		sym = c.program[p.step%len(c.program)]
		p.step++
	}
	pid := p.pid
	if exit {
		p.pid, p.step = g.newPID(), g.rng.IntN(len(c.program))
	}
	procName := apps[c.image%len(apps)]
	dst = append(dst, c.prefix...)
	dst = append(dst, `"evt.time":`...)
	dst = strconv.AppendInt(dst, now.UnixNano(), 10)
	dst = append(dst, `,"evt.type":"`...)
	dst = append(dst, sym...)
	dst = append(dst, `","proc.name":"`...)
	dst = append(dst, procName...)
	dst = append(dst, `","proc.pid":`...)
	dst = strconv.AppendInt(dst, pid, 10)
	dst = append(dst, `,"proc.ppid":1,"user.uid":1000},"output":"falco-scorer observation evt_type=`...)
	dst = append(dst, sym...)
	dst = append(dst, ` container_id=`...)
	dst = append(dst, c.id...)
	dst = append(dst, ` pid=`...)
	dst = strconv.AppendInt(dst, pid, 10)
	dst = append(dst, `","priority":"Debug","rule":"falco-scorer process observation","source":"syscall",`+
		`"tags":["container","falco_scorer","falco_scorer_observation","process"],"time":"`...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `"}`...)
	return dst
}

func (g *Generator) appendAlert(dst []byte, c *container, now time.Time) []byte {
	r := &rules[g.rng.IntN(len(rules))]
	pid := g.newPID()
	ts := now.UTC().AppendFormat(nil, time.RFC3339Nano)
	dst = append(dst, c.prefix...)
	dst = append(dst, `"evt.time":`...)
	dst = strconv.AppendInt(dst, now.UnixNano(), 10)
	dst = append(dst, `,"evt.type":"execve","proc.cmdline":"`...)
	dst = append(dst, r.proc...)
	dst = append(dst, ` -c id","proc.exepath":"/usr/bin/`...)
	dst = append(dst, r.proc...)
	dst = append(dst, `","proc.name":"`...)
	dst = append(dst, r.proc...)
	dst = append(dst, `","proc.pid":`...)
	dst = strconv.AppendInt(dst, pid, 10)
	dst = append(dst, `,"proc.pname":"runc","proc.ppid":1,"proc.tty":34816,"user.loginuid":-1,"user.name":"root","user.uid":0},"output":"`...)
	dst = append(dst, ts...)
	dst = append(dst, ": "...)
	dst = append(dst, r.priority...)
	dst = append(dst, ' ')
	dst = append(dst, r.text...)
	dst = append(dst, ` (evt_type=execve user=root user_uid=0 user_loginuid=-1 process=`...)
	dst = append(dst, r.proc...)
	dst = append(dst, ` proc_exepath=/usr/bin/`...)
	dst = append(dst, r.proc...)
	dst = append(dst, ` parent=runc command=`...)
	dst = append(dst, r.proc...)
	dst = append(dst, ` -c id terminal=34816 container_id=`...)
	dst = append(dst, c.id...)
	dst = append(dst, `)","priority":"`...)
	dst = append(dst, r.priority...)
	dst = append(dst, `","rule":`...)
	dst = strconv.AppendQuote(dst, r.name)
	dst = append(dst, `,"source":"syscall","tags":`...)
	dst = append(dst, r.tags...)
	dst = append(dst, `,"time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, `"}`...)
	return dst
}
