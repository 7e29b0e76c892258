package lab

import (
	"hash/fnv"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one Falco JSON event as http_output (or file_output with
// json_output: true) writes it.
type Event struct {
	Time         string         `json:"time"`
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
}

// event is an Event under construction: fields are filled, the output text
// is rendered last (a connect's tuple may be learnt after it).
type event struct {
	us     int64
	seq    int
	rule   int
	fields map[string]any
	proc   *process
}

// process is one process (thread group) of a trace.
type process struct {
	pid, ppid  int
	parent     *process
	comm, exe  string
	cmdline    string
	uid        int
	cwd        string
	container  *ContainerSpec
	run        *runState
	file       int
	alive      bool
	first      int64 // first event, µs; 0 when none yet
	last       int64
	events     int
	eventsTest int
	root       bool // first process of its trace
	children   []*process
}

type runState struct {
	spec  RunSpec
	procs []*process
	cont  *ContainerSpec
}

// pendingConnect is a connect whose source port is learnt from a later close.
type pendingConnect struct {
	ev     *event
	remote string
	us     int64
}

// Converter turns strace traces into the events the shipped rules emit.
// Feed it every trace of a recording with Add, then call Finish.
type Converter struct {
	man      *Manifest
	conts    map[string]*ContainerSpec
	traces   []TraceSpec
	calls    [][]call
	threads  map[int]*process
	inits    map[string]*process // container key -> its init (main trace's root)
	procs    []*process
	events   []*event
	known    map[string]bool // paths known to exist (a create of them is not a creation)
	pending  map[[2]int]*pendingConnect
	accepts  map[string][]acceptRec // server endpoint -> accepts
	runs     []*runState
	Stats    Stats
	testFrom int64
}

type acceptRec struct {
	us     int64
	client string
	used   bool
}

// Stats counts what conversion dropped or approximated.
type Stats struct {
	BadLines         int            `json:"bad_lines"`
	Calls            int            `json:"calls"`
	Dropped          map[string]int `json:"dropped_by_rules"`
	ConnectsByClose  int            `json:"connect_tuples_from_close"`
	ConnectsByAccept int            `json:"connect_tuples_from_peer_accept"`
	ConnectsUnknown  int            `json:"connect_tuples_unknown"`
	MissingTraces    int            `json:"missing_traces"`
}

// NewConverter starts a conversion for a recording's manifest.
func NewConverter(m *Manifest) *Converter {
	c := &Converter{
		man: m, conts: map[string]*ContainerSpec{}, threads: map[int]*process{}, inits: map[string]*process{},
		known: map[string]bool{}, pending: map[[2]int]*pendingConnect{}, accepts: map[string][]acceptRec{},
		Stats: Stats{Dropped: map[string]int{}},
	}
	for i := range m.Containers {
		c.conts[m.Containers[i].Key] = &m.Containers[i]
	}
	for _, r := range m.Runs {
		c.runs = append(c.runs, &runState{spec: r})
	}
	c.testFrom = m.TestStart.UnixMicro()
	return c
}

// Add parses one trace.
func (c *Converter) Add(t TraceSpec, calls []call, bad int) {
	c.traces = append(c.traces, t)
	c.calls = append(c.calls, calls)
	c.Stats.BadLines += bad
	c.Stats.Calls += len(calls)
}

type ref struct{ file, idx int }

// Finish processes all traces in time order and returns the events, sorted
// by time.
func (c *Converter) Finish() []Event {
	var order []ref
	for f, cs := range c.calls {
		for i := range cs {
			order = append(order, ref{f, i})
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		ca, cb := &c.calls[order[a].file][order[a].idx], &c.calls[order[b].file][order[b].idx]
		if ca.us != cb.us {
			return ca.us < cb.us
		}
		if order[a].file != order[b].file {
			return order[a].file < order[b].file
		}
		return order[a].idx < order[b].idx
	})
	// Clone results per file and child tid, to create a child whose first
	// line comes before its parent's clone returns.
	clones := make([]map[int][]int, len(c.calls))
	used := make([]map[int]bool, len(c.calls))
	for f, cs := range c.calls {
		clones[f], used[f] = map[int][]int{}, map[int]bool{}
		for i, x := range cs {
			if isClone(x.name) && x.ret > 0 {
				clones[f][int(x.ret)] = append(clones[f][int(x.ret)], i)
			}
		}
	}
	for _, r := range order {
		x := &c.calls[r.file][r.idx]
		p := c.threads[x.tid]
		if p == nil || !p.alive || p.file != r.file {
			p = c.create(r.file, x.tid, clones[r.file], used[r.file])
		}
		if isClone(x.name) && x.ret > 0 {
			if !used[r.file][r.idx] {
				used[r.file][r.idx] = true
				c.spawn(p, x, r.file)
			}
		}
		c.handle(p, x)
	}
	for k, pc := range c.pending {
		c.resolveByAccept(pc)
		delete(c.pending, k)
	}
	sort.SliceStable(c.events, func(a, b int) bool { return c.events[a].us < c.events[b].us })
	out := make([]Event, 0, len(c.events))
	for _, e := range c.events {
		out = append(out, c.render(e))
	}
	return out
}

func isClone(name string) bool {
	return name == "clone" || name == "clone3" || name == "fork" || name == "vfork"
}

// create finds the thread or process tid of trace file f: from its parent's
// clone result, or as the root process of the trace.
func (c *Converter) create(f, tid int, clones map[int][]int, used map[int]bool) *process {
	for _, i := range clones[tid] {
		if used[i] {
			continue
		}
		used[i] = true
		x := &c.calls[f][i]
		parent := c.threads[x.tid]
		if parent == nil || !parent.alive {
			parent = c.create(f, x.tid, clones, used)
		}
		return c.spawn(parent, x, f)
	}
	cont := c.conts[c.traces[f].Container]
	p := &process{pid: tid, ppid: shimPID(cont), comm: "containerd-shim", uid: 0, container: cont, file: f, alive: true, root: true}
	p.parent = &process{pid: p.ppid, comm: "containerd-shim"}
	if !c.traces[f].Exec {
		c.inits[c.traces[f].Container] = p
	}
	for _, r := range c.runs {
		if r.spec.Trace == c.traces[f].File {
			c.join(p, r)
		}
	}
	c.threads[tid] = p
	c.procs = append(c.procs, p)
	return p
}

// shimPID is the container runtime's pid that parents a container's init and
// execs: synthetic, stable per container.
func shimPID(cont *ContainerSpec) int {
	h := fnv.New32a()
	if cont != nil {
		h.Write([]byte(cont.ID))
	}
	return 4000000 + int(h.Sum32()%100000)
}

// spawn creates the child of a clone result x made by parent.
func (c *Converter) spawn(parent *process, x *call, f int) *process {
	child := int(x.ret)
	if strings.Contains(x.raw, "CLONE_THREAD") {
		c.threads[child] = parent
		return parent
	}
	p := &process{
		pid: child, ppid: parent.pid, parent: parent, comm: parent.comm, exe: parent.exe, cmdline: parent.cmdline,
		uid: parent.uid, cwd: parent.cwd, container: parent.container, file: f, alive: true,
	}
	// A run rooted at this pid (an attack through the debug endpoint) wins
	// over the parent's run (a drift run covering the whole container).
	var run *runState
	for _, r := range c.runs {
		if r.spec.RootPID == child && x.us >= r.spec.Start.UnixMicro()-2e6 && x.us <= r.spec.End.UnixMicro()+2e6 {
			run = r
		}
	}
	if run == nil {
		run = parent.run
	}
	if run != nil {
		c.join(p, run)
	}
	parent.children = append(parent.children, p)
	c.threads[child] = p
	c.procs = append(c.procs, p)
	return p
}

// reparent gives the live children of an exited process to their
// container's init, as the kernel (and Falco's thread table) does for a
// container without a subreaper.
func (c *Converter) reparent(p *process) {
	var init *process
	for k, ip := range c.inits {
		if c.conts[k] == p.container {
			init = ip
		}
	}
	for _, ch := range p.children {
		if !ch.alive {
			continue
		}
		if init != nil && init.alive && init != p {
			ch.parent, ch.ppid = init, init.pid
			init.children = append(init.children, ch)
		}
	}
	p.children = nil
}

func (c *Converter) join(p *process, r *runState) {
	p.run = r
	r.procs = append(r.procs, p)
	if r.cont == nil {
		r.cont = p.container
	}
}

const (
	oWronly    = "O_WRONLY"
	oRdwr      = "O_RDWR"
	oCreat     = "O_CREAT"
	oExcl      = "O_EXCL"
	oDirectory = "O_DIRECTORY"
)

func hasFlag(flags, f string) bool {
	for _, x := range strings.Split(flags, "|") {
		if x == f {
			return true
		}
	}
	return false
}

// resolve makes p absolute against dir and cleans it, as Falco's fd.name
// and fs.path.name are.
func resolve(dir, p string) string {
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		if dir == "" {
			dir = "/"
		}
		p = dir + "/" + p
	}
	return path.Clean(p)
}

// dirOf returns the directory a *at call resolves against: the -yy path of
// dirfd, or the process's cwd.
func (c *Converter) dirOf(p *process, arg string) string {
	fd, ann := fdArg(arg)
	if ap := annPath(ann); ap != "" {
		if fd == -100 {
			p.cwd = ap
		}
		return ap
	}
	return p.cwd
}

func (c *Converter) rewrite(p string) string {
	if pre := c.man.RootfsPrefix; pre != "" && (p == pre || strings.HasPrefix(p, pre+"/")) {
		p = strings.TrimPrefix(p, pre)
		if p == "" {
			p = "/"
		}
	}
	return p
}

func res(x *call) string {
	if x.ret >= 0 && x.ret != unknownRet {
		return "SUCCESS"
	}
	if x.errno != "" {
		return x.errno
	}
	return "EUNKNOWN"
}

// handle applies the rules to one call of process p.
func (c *Converter) handle(p *process, x *call) {
	if x.exit {
		if x.tid != p.pid {
			delete(c.threads, x.tid)
			return
		}
		c.emit(p, x, ruleProcess, "procexit", nil, nil)
		p.alive = false
		delete(c.threads, x.tid)
		c.reparent(p)
		return
	}
	switch x.name {
	case "execve", "execveat":
		if x.ret == 0 {
			fi, ai := 0, 1
			dir := p.cwd
			if x.name == "execveat" {
				fi, ai = 1, 2
				dir = c.dirOf(p, arg(x, 0))
			}
			file, _ := unquote(arg(x, fi))
			argv := parseArray(arg(x, ai))
			p.exe = resolve(dir, file)
			p.comm = path.Base(file)
			if len(p.comm) > 15 {
				p.comm = p.comm[:15] // TASK_COMM_LEN
			}
			p.cmdline = p.comm
			if len(argv) > 1 {
				p.cmdline += " " + strings.Join(argv[1:], " ")
			}
		}
		c.emit(p, x, ruleProcess, x.name, nil, nil)
	case "clone", "clone3", "fork", "vfork":
		if x.ret > 0 && !strings.Contains(x.raw, "CLONE_THREAD") {
			c.emit(p, x, ruleProcess, x.name, nil, nil)
		}
	case "open", "openat", "openat2", "creat":
		c.open(p, x)
	case "chmod", "fchmod", "fchmodat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
		"symlink", "symlinkat", "link", "linkat", "mkdir", "mkdirat":
		c.fileChange(p, x)
	case "connect", "accept", "accept4", "bind", "listen":
		c.net(p, x)
	case "close":
		fd, ann := fdArg(arg(x, 0))
		if pc := c.pending[[2]int{p.pid, fd}]; pc != nil {
			if s, ok := parseSocket(ann); ok && s.remote != "" {
				pc.ev.fields["fd.name"] = s.local + "->" + s.remote
				c.Stats.ConnectsByClose++
			} else {
				c.resolveByAccept(pc)
			}
			delete(c.pending, [2]int{p.pid, fd})
		}
	default:
		t := evtTypeOf(x.name)
		if ruleOf(t) != rulePrivilege {
			c.Stats.Dropped[t]++
			return
		}
		if x.ret == 0 {
			switch x.name {
			case "setuid":
				if v, err := strconv.Atoi(arg(x, 0)); err == nil {
					p.uid = v
				}
			case "setresuid":
				if v, err := strconv.Atoi(arg(x, 1)); err == nil && v >= 0 {
					p.uid = v
				}
			}
		}
		c.emit(p, x, rulePrivilege, t, nil, nil)
	}
}

func arg(x *call, i int) string {
	if i < len(x.args) {
		return x.args[i]
	}
	return ""
}

func (c *Converter) open(p *process, x *call) {
	var dir, name, flags, mode string
	switch x.name {
	case "open":
		dir, name, flags, mode = p.cwd, arg(x, 0), arg(x, 1), arg(x, 2)
	case "creat":
		dir, name, flags, mode = p.cwd, arg(x, 0), "O_WRONLY|O_CREAT|O_TRUNC", arg(x, 1)
	case "openat":
		dir, name, flags, mode = c.dirOf(p, arg(x, 0)), arg(x, 1), arg(x, 2), arg(x, 3)
	case "openat2":
		dir, name = c.dirOf(p, arg(x, 0)), arg(x, 1)
		how := arg(x, 2)
		if i := strings.Index(how, "flags="); i >= 0 {
			flags = strings.FieldsFunc(how[i+6:], func(r rune) bool { return r == ',' || r == '}' })[0]
		}
		if i := strings.Index(how, "mode="); i >= 0 {
			mode = strings.FieldsFunc(how[i+5:], func(r rune) bool { return r == ',' || r == '}' })[0]
		}
	}
	// Falco names the file by the path the caller gave, made absolute with
	// the cwd or dirfd, not symlink-resolved (strace's -yy annotation of the
	// returned fd is resolved: /var/run/... would read /run/...).
	raw, _ := unquote(name)
	p2 := resolve(dir, raw)
	if raw == "" && x.ret >= 0 {
		if ap := annPath(x.retAnn); ap != "" {
			p2 = ap
		}
	}
	write := hasFlag(flags, oWronly) || hasFlag(flags, oRdwr)
	created := false
	if x.ret >= 0 && hasFlag(flags, oCreat) && !pmatch(p2, pseudoFS) && (hasFlag(flags, oExcl) || !c.known[p2]) {
		created = true
	}
	execMode := false
	if created {
		if m, err := strconv.ParseUint(mode, 0, 32); err == nil && m&0o111 != 0 {
			execMode = true
		}
	}
	if x.ret >= 0 {
		c.known[p2] = true
	}
	name2 := c.rewrite(p2)
	typeF := !hasFlag(flags, oDirectory)
	if !typeF || !((write && !pmatch(name2, pseudoFS)) || created || execMode || pmatch(name2, sensitivePaths)) {
		c.Stats.Dropped["open (read or pseudo-fs)"]++
		return
	}
	ev := c.emit(p, x, ruleFile, evtTypeOf(x.name), name2, name2)
	if ev != nil {
		// Falco's exit event carries PPM_O_F_CREATED when the open created
		// the file; flag names are Falco's, their order strace's.
		f := flags
		if created {
			f += "|O_F_CREATED"
		}
		ev.fields["evt.arg.flags"], ev.fields["evt.arg.mode"] = f, octal(mode)
	}
}

// octal renders a mode as Falco prints it ("0755"); an absent mode is "0".
func octal(mode string) string {
	m, err := strconv.ParseUint(strings.TrimSpace(mode), 0, 32)
	if err != nil {
		return "0"
	}
	return "0" + strconv.FormatUint(m, 8)
}

func (c *Converter) fileChange(p *process, x *call) {
	var fdName, fsPath, flags, mode any
	str := func(i int) string { s, _ := unquote(arg(x, i)); return s }
	switch x.name {
	case "chmod", "mkdir", "unlink":
		fsPath = c.rewrite(resolve(p.cwd, str(0)))
		if x.name != "unlink" {
			mode = octal(arg(x, 1))
		}
		if x.name == "unlink" && x.ret == 0 {
			delete(c.known, resolve(p.cwd, str(0)))
		}
	case "fchmodat", "mkdirat", "unlinkat":
		full := resolve(c.dirOf(p, arg(x, 0)), str(1))
		fsPath = c.rewrite(full)
		if x.name == "unlinkat" {
			flags = arg(x, 2)
		} else {
			mode = octal(arg(x, 2))
		}
		if x.name == "unlinkat" && x.ret == 0 {
			delete(c.known, full)
		}
	case "fchmod":
		_, ann := fdArg(arg(x, 0))
		if ap := annPath(ann); ap != "" {
			fdName = c.rewrite(ap)
		}
		mode = octal(arg(x, 1))
	case "rename", "link":
		if x.ret == 0 {
			c.moved(resolve(p.cwd, str(0)), resolve(p.cwd, str(1)), x.name == "rename")
		}
	case "renameat", "renameat2", "linkat":
		if x.ret == 0 {
			c.moved(resolve(c.dirOf(p, arg(x, 0)), str(1)), resolve(c.dirOf(p, arg(x, 2)), str(3)), x.name != "linkat")
		}
	}
	if ev := c.emit(p, x, ruleFile, evtTypeOf(x.name), fdName, fsPath); ev != nil {
		ev.fields["evt.arg.flags"], ev.fields["evt.arg.mode"] = flags, mode
	}
}

func (c *Converter) moved(from, to string, rename bool) {
	if rename {
		delete(c.known, from)
	}
	c.known[to] = true
}

func (c *Converter) net(p *process, x *call) {
	var fdName any
	var s socket
	var ok bool
	switch x.name {
	case "accept", "accept4":
		if x.ret < 0 {
			c.Stats.Dropped["accept (failed: no fd)"]++
			return
		}
		s, ok = parseSocket(x.retAnn)
		if ok && s.remote != "" {
			fdName = s.remote + "->" + s.local // client->server
			c.accepts[s.local] = append(c.accepts[s.local], acceptRec{us: x.us, client: s.remote})
		}
	case "listen":
		_, ann := fdArg(arg(x, 0))
		s, ok = parseSocket(ann)
		fdName = s.local
	case "bind":
		_, ann := fdArg(arg(x, 0))
		s, ok = parseSocket(ann)
		fam, addr := parseSockaddr(arg(x, 1))
		if !ok {
			s, ok = socket{family: fam, proto: "tcp"}, fam != 0
		}
		fdName = addr
	case "connect":
		fd, ann := fdArg(arg(x, 0))
		s, ok = parseSocket(ann)
		fam, addr := parseSockaddr(arg(x, 1))
		if !ok {
			s, ok = socket{family: fam, proto: "tcp"}, fam != 0
		}
		if s.family == '4' || s.family == '6' {
			if x.ret == 0 || x.errno == "EINPROGRESS" {
				// Falco's tuple comes from the kernel socket at exit; strace
				// printed the fd before it was connected. Learnt at close.
				fdName = "0.0.0.0:0->" + addr
				ev := c.emit(p, x, ruleNetwork, "connect", fdName, nil)
				if ev != nil {
					ev.fields["fd.l4proto"] = s.proto
					c.pending[[2]int{p.pid, fd}] = &pendingConnect{ev: ev, remote: addr, us: x.us}
				}
				return
			}
			// A failed connect leaves the socket unnamed in Falco (the
			// parser returns before filling the tuple).
			fdName = ""
		}
	}
	if !ok || (s.family != '4' && s.family != '6') {
		c.Stats.Dropped[x.name+" (not ipv4/ipv6)"]++
		return
	}
	ev := c.emit(p, x, ruleNetwork, x.name, fdName, nil)
	if ev != nil {
		ev.fields["fd.l4proto"] = s.proto
	}
}

// resolveByAccept fills a connect's tuple from the traced server's accept of
// it (same server endpoint, within 3 s) when no close told it.
func (c *Converter) resolveByAccept(pc *pendingConnect) {
	list := c.accepts[pc.remote]
	for i := range list {
		a := &list[i]
		if !a.used && a.us >= pc.us-1000 && a.us <= pc.us+3e6 {
			a.used = true
			pc.ev.fields["fd.name"] = a.client + "->" + pc.remote
			c.Stats.ConnectsByAccept++
			return
		}
	}
	c.Stats.ConnectsUnknown++
}

// emit records an event of rule for p; fdName and fsPath are used only by
// the rules that print them.
func (c *Converter) emit(p *process, x *call, rule int, evtType string, fdName, fsPath any) *event {
	cont := p.container
	if cont == nil {
		c.Stats.Dropped["no container"]++
		return nil
	}
	for _, ex := range excludedProcs {
		if p.comm == ex {
			c.Stats.Dropped["excluded proc"]++
			return nil
		}
	}
	pname := ""
	if p.parent != nil {
		pname = p.parent.comm
	}
	var resv any = res(x)
	if evtType == "procexit" {
		resv = nil // an enter event: Falco has no evt.res for it
	}
	user, ok := c.man.Users[p.uid]
	var userv any = user
	if !ok {
		userv = nil
	}
	f := map[string]any{
		"evt.type": evtType, "evt.res": resv,
		"container.id": cont.ID, "container.name": cont.Name, "container.image.repository": cont.Repository,
		"container.image.tag": cont.Tag, "container.image.digest": cont.Digest,
		"k8s.ns.name": cont.Namespace, "k8s.pod.name": cont.Pod,
		"proc.name": p.comm, "proc.pid": p.pid, "proc.ppid": p.ppid, "proc.pname": pname,
		"proc.exepath": p.exe, "proc.cmdline": p.cmdline, "user.name": userv, "user.uid": p.uid,
	}
	switch rule {
	case ruleFile:
		f["fd.name"], f["fs.path.name"], f["evt.arg.flags"], f["evt.arg.mode"] = fdName, fsPath, nil, nil
	case ruleNetwork:
		f["fd.name"], f["fd.l4proto"] = fdName, nil
	}
	ev := &event{us: x.us, seq: len(c.events), rule: rule, fields: f, proc: p}
	c.events = append(c.events, ev)
	if p.first == 0 {
		p.first = x.us
	}
	p.last = x.us
	p.events++
	if x.us >= c.testFrom {
		p.eventsTest++
	}
	return ev
}

func (c *Converter) render(e *event) Event {
	spec := ruleSpecs[e.rule]
	var b strings.Builder
	t := time.UnixMicro(e.us).UTC()
	b.WriteString(t.Format("15:04:05.000000000"))
	b.WriteString(": Debug ")
	for i, w := range strings.Fields(spec.Output) {
		if i > 0 {
			b.WriteByte(' ')
		}
		k, f, ok := strings.Cut(w, "=%")
		if !ok {
			b.WriteString(w)
			continue
		}
		b.WriteString(k)
		b.WriteByte('=')
		switch v := e.fields[f].(type) {
		case nil:
			b.WriteString("<NA>")
		case string:
			b.WriteString(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		}
	}
	return Event{
		Time: t.Format(falcoTime), Rule: spec.Name, Priority: "Debug", Source: "syscall",
		Tags: sortedTags(spec.Tags), Hostname: c.man.Hostname, Output: b.String(), OutputFields: e.fields,
	}
}

// falcoTime is Falco's "time": RFC 3339, always nine fraction digits, UTC.
const falcoTime = "2006-01-02T15:04:05.000000000Z07:00"

func sortedTags(t []string) []string {
	out := append([]string(nil), t...)
	sort.Strings(out)
	return out
}
