package symbol

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Modes.
const (
	// ModeArgs builds a symbol from evt.type and an abstraction of its
	// arguments (the default: what a Falco stream carries).
	ModeArgs = "args"
	// ModeType uses evt.type alone (ADFA-LD style traces without arguments).
	ModeType = "type"
)

// DefaultSensitivePaths are the rules file's falco_scorer_sensitive_paths:
// files under them keep their exact path in a symbol (rules tests check that
// the two lists agree).
var DefaultSensitivePaths = []string{
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/pam.d", "/root",
	"/var/run/secrets", "/run/secrets", "/etc/kubernetes", "/etc/ssh",
}

// DefaultWritableDirs are directories where anyone may drop a binary: an
// executable under them is named by its directory alone, since a dropped
// file's name is the attacker's choice and would otherwise be a new symbol
// each time.
var DefaultWritableDirs = []string{"/tmp", "/var/tmp", "/dev/shm", "/run/user", "/home"}

// Config chooses how observations become symbols.
type Config struct {
	Mode string `yaml:"mode"` // ModeArgs or ModeType
	// PathDepth is the number of directory components a file's path class
	// keeps ("/var/log/nginx/*" at 3); deeper directories end in "/**".
	PathDepth int `yaml:"path_depth"`
	// ExecParent adds the parent's process name to exec symbols
	// ("execve /usr/bin/curl < sh").
	ExecParent bool `yaml:"exec_parent"`
	// SensitivePaths keep their exact path (pmatch: the path or below it).
	SensitivePaths []string `yaml:"sensitive_paths"`
	// WritableDirs name a dropped executable by directory only.
	WritableDirs []string `yaml:"writable_dirs"`
}

// DefaultConfig is the configuration chosen on the recorded lab (see the
// README's detection section).
func DefaultConfig() Config {
	return Config{
		Mode:           ModeArgs,
		PathDepth:      3,
		ExecParent:     false,
		SensitivePaths: slices.Clone(DefaultSensitivePaths),
		WritableDirs:   slices.Clone(DefaultWritableDirs),
	}
}

// Validate reports invalid fields by their YAML names.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != ModeArgs && c.Mode != ModeType {
		errs = append(errs, fmt.Errorf("mode: %q, want %q or %q", c.Mode, ModeArgs, ModeType))
	}
	if c.PathDepth < 1 || c.PathDepth > 8 {
		errs = append(errs, fmt.Errorf("path_depth: %d out of range 1..8", c.PathDepth))
	}
	for i, p := range c.SensitivePaths {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("sensitive_paths[%d]: %q is not absolute", i, p))
		}
	}
	for i, p := range c.WritableDirs {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("writable_dirs[%d]: %q is not absolute", i, p))
		}
	}
	return errors.Join(errs...)
}

// Fingerprint names the configuration's symbol language. Baselines learned
// under one fingerprint are meaningless under another: the pipeline starts
// such a baseline afresh.
func (c Config) Fingerprint() string {
	if c.Mode == ModeType {
		return ModeType
	}
	return fmt.Sprintf("%s/v1/d%d/p%t/s%s/w%s", c.Mode, c.PathDepth, c.ExecParent,
		strings.Join(c.SensitivePaths, ","), strings.Join(c.WritableDirs, ","))
}

// Observation holds the output fields of one falco-scorer observation that
// the symbolizer reads (Falco's names in the comments). Empty means absent.
type Observation struct {
	EvtType    string // evt.type
	Res        string // evt.res: SUCCESS or an errno name (or a number)
	ExePath    string // proc.exepath
	ParentName string // proc.pname
	UID        string // user.uid, after the call
	File       string // fd.name: a file path, or an endpoint "a:p->b:p"
	Path       string // fs.path.name: the path of a metadata change
	Flags      string // evt.arg.flags of an open: O_WRONLY|O_CREAT|...
	Mode       string // evt.arg.mode: the mode of a create or chmod
}

// Symbolizer turns observations into symbols. It is immutable and safe for
// concurrent use.
type Symbolizer struct {
	cfg Config
}

// New returns a Symbolizer for a valid cfg.
func New(cfg Config) (*Symbolizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Symbolizer{cfg: cfg}, nil
}

// Config returns the symbolizer's configuration.
func (s *Symbolizer) Config() Config { return s.cfg }

// maxSymbol bounds a symbol's length: a long path is cut, so one event cannot
// make a huge vocabulary entry.
const maxSymbol = 160

// Symbol returns o's symbol, or "" when o has no evt.type.
func (s *Symbolizer) Symbol(o *Observation) string {
	if o.EvtType == "" || s.cfg.Mode == ModeType {
		return o.EvtType
	}
	var b strings.Builder
	b.Grow(48)
	s.build(&b, o)
	out := b.String()
	if len(out) > maxSymbol {
		out = cutUTF8(out, maxSymbol)
	}
	return out
}

func (s *Symbolizer) build(b *strings.Builder, o *Observation) {
	t := o.EvtType
	fail := failed(o.Res)
	switch t {
	case "execve", "execveat":
		b.WriteString("execve ")
		if fail {
			// A failed exec leaves the caller's image in place: its exepath
			// is not what was tried.
			b.WriteString("failed")
			return
		}
		s.execPath(b, o.ExePath)
		if s.cfg.ExecParent && o.ParentName != "" {
			b.WriteString(" < ")
			b.WriteString(cleanName(o.ParentName))
		}
		return
	case "clone", "clone3", "fork", "vfork":
		b.WriteString("clone")
		return
	case "procexit":
		b.WriteString("procexit")
		return
	case "open", "openat", "openat2", "creat":
		b.WriteString("open ")
		b.WriteString(openMode(t, o.Flags, o.Mode))
		b.WriteByte(' ')
		s.pathClass(b, firstPath(o.File, o.Path))
	case "chmod", "fchmod", "fchmodat":
		b.WriteString("chmod ")
		s.pathClass(b, firstPath(o.Path, o.File))
		if execBits(o.Mode) {
			b.WriteString(" +x")
		}
	case "unlink", "unlinkat", "rename", "renameat", "renameat2", "symlink", "symlinkat",
		"link", "linkat", "mkdir", "mkdirat":
		b.WriteString(strings.TrimSuffix(strings.TrimSuffix(t, "at2"), "at"))
		b.WriteByte(' ')
		s.pathClass(b, firstPath(o.Path, o.File))
	case "connect", "accept", "accept4", "bind", "listen":
		endpoint(b, t, o.File)
		if fail && o.Res != "EINPROGRESS" && o.Res != "EAGAIN" {
			b.WriteString(" failed")
		}
		return
	case "setuid", "setgid", "setresuid", "setresgid":
		b.WriteString(t)
		switch {
		case fail:
			b.WriteString(" failed")
		case o.UID == "0":
			b.WriteString(" root")
		case o.UID != "":
			b.WriteString(" user")
		}
		return
	default:
		b.WriteString(cleanName(t))
	}
	if fail {
		b.WriteString(" failed")
	}
}

// failed reports a result that is an error: Falco prints SUCCESS, a
// non-negative number (a new fd or pid) or an errno name.
func failed(res string) bool {
	if res == "" || res == "SUCCESS" {
		return false
	}
	if n, err := strconv.ParseInt(res, 10, 64); err == nil {
		return n < 0
	}
	return true
}

// openMode classes an open by what it may do: exec (created executable),
// create, write, or read (a sensitive read, the only reads observed).
func openMode(evtType, flags, mode string) string {
	create := evtType == "creat" || strings.Contains(flags, "O_CREAT")
	switch {
	case create && execBits(mode):
		return "create+x"
	case create:
		return "create"
	case strings.Contains(flags, "O_WRONLY") || strings.Contains(flags, "O_RDWR") ||
		strings.Contains(flags, "O_TRUNC") || strings.Contains(flags, "O_APPEND"):
		return "write"
	case flags == "":
		return "write" // flags not printed (older rules): the rules observe writes
	default:
		return "read"
	}
}

// execBits reports a mode (octal, as Falco prints it: "0755") or symbolic
// mode with an execute bit.
func execBits(mode string) bool {
	if mode == "" {
		return false
	}
	if n, err := strconv.ParseUint(mode, 8, 32); err == nil {
		return n&0o111 != 0
	}
	return strings.Contains(mode, "S_IXUSR") || strings.Contains(mode, "S_IXGRP") || strings.Contains(mode, "S_IXOTH")
}

func firstPath(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// execPath writes an executable's path: exact but for volatile components,
// and by directory alone under a writable directory.
func (s *Symbolizer) execPath(b *strings.Builder, p string) {
	if p == "" || p[0] != '/' {
		b.WriteString("?")
		return
	}
	for _, w := range s.cfg.WritableDirs {
		if under(p, w) {
			b.WriteString(strings.TrimSuffix(w, "/"))
			b.WriteString("/*")
			return
		}
	}
	writeComponents(b, p, 16)
}

// pathClass writes a file's class: the sensitive path exactly, else its
// directory to PathDepth components and "/*".
func (s *Symbolizer) pathClass(b *strings.Builder, p string) {
	if p == "" || p[0] != '/' {
		b.WriteString("?")
		return
	}
	for _, sp := range s.cfg.SensitivePaths {
		if under(p, sp) {
			// Exact, but bounded: a home directory may hold anything.
			writeComponents(b, p, s.cfg.PathDepth+3)
			return
		}
	}
	i := strings.LastIndexByte(p, '/')
	dir := p[:i]
	if dir == "" {
		b.WriteString("/*")
		return
	}
	writeComponents(b, dir, s.cfg.PathDepth)
	b.WriteString("/*")
}

// under is Falco's pmatch: p is prefix or below it.
func under(p, prefix string) bool {
	return strings.HasPrefix(p, prefix) && (len(p) == len(prefix) || p[len(prefix)] == '/' || strings.HasSuffix(prefix, "/"))
}

// writeComponents writes up to depth components of an absolute path, each
// volatile one as "*", and "/**" when components were left out.
func writeComponents(b *strings.Builder, p string, depth int) {
	n := 0
	for rest := p; rest != ""; {
		rest = strings.TrimLeft(rest, "/")
		if rest == "" {
			break
		}
		var c string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			c, rest = rest[:i], rest[i:]
		} else {
			c, rest = rest, ""
		}
		if c == "." {
			continue
		}
		if n == depth {
			b.WriteString("/**")
			return
		}
		b.WriteByte('/')
		if volatile(c) {
			b.WriteByte('*')
		} else {
			b.WriteString(c)
		}
		n++
	}
	if n == 0 {
		b.WriteByte('/')
	}
}

// volatile reports a path component that differs from run to run: numbers
// (pids, dates), hashes and UUIDs, random temporary names.
func volatile(c string) bool {
	digits, hexRun, maxHexRun, letters := 0, 0, 0, 0
	for i := 0; i < len(c); i++ {
		ch := c[i]
		isDigit := ch >= '0' && ch <= '9'
		isHex := isDigit || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')
		if isDigit {
			digits++
		}
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' {
			letters++
		}
		if isHex {
			hexRun++
			maxHexRun = max(maxHexRun, hexRun)
		} else {
			hexRun = 0
		}
		if ch >= 0x7f || ch < 0x20 {
			return true // non-ASCII or control bytes: never a stable name
		}
	}
	switch {
	case digits > 0 && letters == 0:
		return true // 1234, 2026-12-07
	case digits >= 4:
		return true // tmpa8f3k2x1, access-20261207.log
	case maxHexRun >= 8 && digits > 0:
		return true // hashes, UUID parts, container ids
	}
	return false
}

// cleanName keeps a process or call name printable and short.
func cleanName(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f || s[i] == ' ' {
			return "?"
		}
	}
	if len(s) > 32 {
		return s[:32]
	}
	return s
}

// endpoint writes a network observation: the call, then for connect the
// server's class and port, for accept the local port and the client's class,
// for bind and listen the local port. Falco prints a connected socket's
// fd.name as client->server whichever side the process is on.
func endpoint(b *strings.Builder, evtType, fd string) {
	if evtType == "accept4" {
		evtType = "accept"
	}
	b.WriteString(evtType)
	client, server, ok := splitConn(fd)
	switch evtType {
	case "connect":
		if !ok || !server.IsValid() {
			b.WriteString(" ?")
			return
		}
		b.WriteByte(' ')
		b.WriteString(addrClass(server.Addr()))
		b.WriteByte(':')
		b.WriteString(portClass(server.Port(), false))
	case "accept":
		if !ok || !server.IsValid() {
			b.WriteString(" ?")
			return
		}
		b.WriteString(" :")
		b.WriteString(portClass(server.Port(), true))
		if client.IsValid() {
			b.WriteString(" from ")
			b.WriteString(addrClass(client.Addr()))
		}
	default: // bind, listen: a lone local address
		a := client
		if server.IsValid() {
			a = server
		}
		if !ok || !a.IsValid() {
			b.WriteString(" ?")
			return
		}
		b.WriteString(" ")
		if !a.Addr().IsUnspecified() {
			b.WriteString(addrClass(a.Addr()))
		}
		b.WriteByte(':')
		b.WriteString(portClass(a.Port(), true))
	}
}

// splitConn parses Falco's fd.name of a socket: "client:p->server:p" (IPv6
// without brackets: the port follows the last colon) or a lone "a:p".
func splitConn(fd string) (client, server netip.AddrPort, ok bool) {
	if fd == "" {
		return client, server, false
	}
	l, r, arrow := strings.Cut(fd, "->")
	client, okL := parseAddrPort(l)
	if arrow {
		server, _ = parseAddrPort(r)
	}
	return client, server, okL || server.IsValid()
}

func parseAddrPort(s string) (netip.AddrPort, bool) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	host := strings.Trim(s[:i], "[]")
	if host == "" {
		host = "0.0.0.0"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), true
}

// addrClass is an endpoint's class: loopback, cluster (private, link-local
// and carrier-grade NAT ranges, where pods and services live) or external.
func addrClass(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "any"
	case a.IsPrivate() || a.IsLinkLocalUnicast() || cgnat.Contains(a):
		return "cluster"
	default:
		return "external"
	}
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// portClass keeps a port exact unless it is ephemeral (Linux's default
// range starts at 32768): a client's port changes with every connection.
// A port the process listens on is always exact.
func portClass(p uint16, own bool) string {
	if !own && p >= 32768 {
		return "ephemeral"
	}
	return strconv.Itoa(int(p))
}

// cutUTF8 cuts s to at most n bytes without splitting a rune.
func cutUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
