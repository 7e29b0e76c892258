package lab

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// call is one system call (or exit marker) of an strace -f -ttt -yy trace,
// with unfinished/resumed halves joined.
type call struct {
	tid    int
	us     int64 // microseconds since the epoch
	name   string
	args   []string // top-level arguments, as printed
	raw    string   // the argument text, unsplit
	ret    int64
	retAnn string // the -yy annotation of the return value: "/path", "TCP:[a->b]"
	errno  string // "ENOENT", or "" on success
	exit   bool   // "+++ exited with N +++" or "+++ killed by SIG +++"
	line   int
}

// unknownRet is the return value of a call strace printed as "?".
const unknownRet = -1 << 40

// parseTrace reads one strace output file. Lines it cannot read are counted,
// not fatal: a trace cut by a kill can end mid-line.
func parseTrace(r io.Reader) (calls []call, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	pending := map[int]string{}
	n := 0
	for sc.Scan() {
		n++
		c, ok, perr := parseLine(sc.Text(), pending)
		if perr != nil {
			bad++
			continue
		}
		if ok {
			c.line = n
			calls = append(calls, c)
		}
	}
	return calls, bad, sc.Err()
}

// parseLine parses one line; ok is false for lines that carry no call (an
// unfinished half, a signal).
func parseLine(line string, pending map[int]string) (call, bool, error) {
	var c call
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return c, false, fmt.Errorf("no pid: %q", line)
	}
	tid, err := strconv.Atoi(line[:sp])
	if err != nil {
		return c, false, fmt.Errorf("pid: %w", err)
	}
	rest := strings.TrimLeft(line[sp:], " ")
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 {
		return c, false, fmt.Errorf("no time: %q", line)
	}
	us, err := parseMicros(rest[:sp])
	if err != nil {
		return c, false, err
	}
	c.tid, c.us = tid, us
	body := rest[sp+1:]
	switch {
	case strings.HasPrefix(body, "+++ "):
		if strings.HasPrefix(body, "+++ exited with") || strings.HasPrefix(body, "+++ killed by") {
			delete(pending, tid)
			c.exit = true
			return c, true, nil
		}
		return c, false, nil
	case strings.HasPrefix(body, "--- "):
		return c, false, nil
	case strings.HasSuffix(body, " <unfinished ...>"):
		pending[tid] = strings.TrimSuffix(body, " <unfinished ...>")
		return c, false, nil
	case strings.HasPrefix(body, "<... "):
		i := strings.Index(body, " resumed>")
		if i < 0 {
			return c, false, fmt.Errorf("resumed: %q", line)
		}
		head, ok := pending[tid]
		delete(pending, tid)
		if !ok {
			return c, false, fmt.Errorf("resumed without start: %q", line)
		}
		body = head + body[i+len(" resumed>"):]
	}
	// "name(args) = ret", where strace pads short calls: "setuid(33)   = 0".
	open := strings.IndexByte(body, '(')
	eq := strings.LastIndex(body, " = ")
	if open <= 0 || eq < open {
		return c, false, fmt.Errorf("call: %q", line)
	}
	end := len(strings.TrimRight(body[:eq], " ")) - 1
	if end < open || body[end] != ')' {
		return c, false, fmt.Errorf("call: %q", line)
	}
	c.name = body[:open]
	c.raw = body[open+1 : end]
	c.args = splitArgs(c.raw)
	c.ret, c.retAnn, c.errno = parseRet(body[eq+3:])
	return c, true, nil
}

func parseMicros(s string) (int64, error) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 6 {
		return 0, fmt.Errorf("time %q: want seconds.micros", s)
	}
	a, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	b, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w", s, err)
	}
	return a*1e6 + b, nil
}

var errnoRE = regexp.MustCompile(`^([A-Z][A-Z0-9_]+)`)

// parseRet reads "0", "5</path>", "-1 ENOENT (No such file...)", "? ERESTARTSYS ...".
func parseRet(s string) (int64, string, string) {
	s = strings.TrimSpace(s)
	num := s
	if i := strings.IndexAny(s, " <"); i >= 0 {
		num = s[:i]
	}
	rest := s[len(num):]
	var ann string
	if strings.HasPrefix(rest, "<") {
		ann, rest = cutAnnotation(rest)
	}
	var errno string
	if m := errnoRE.FindStringSubmatch(strings.TrimSpace(rest)); m != nil {
		errno = m[1]
	}
	if num == "?" {
		return unknownRet, ann, errno
	}
	v, err := strconv.ParseInt(num, 0, 64)
	if err != nil {
		return unknownRet, ann, errno
	}
	return v, ann, errno
}

// cutAnnotation splits "<a<b>>tail" into "a<b>" and "tail".
func cutAnnotation(s string) (string, string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			depth++
		case '>':
			if i > 0 && s[i-1] == '-' { // the "->" of a socket tuple
				continue
			}
			depth--
			if depth == 0 {
				return s[1:i], s[i+1:]
			}
		}
	}
	return s[1:], ""
}

// splitArgs splits an argument list at top-level commas, keeping strings,
// brackets, braces and -yy annotations ("3</path>") whole.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if inStr {
			switch ch {
			case '\\':
				i++
			case '"':
				inStr = false
			}
			continue
		}
		switch ch {
		case '"':
			inStr = true
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '<':
			if i > 0 && (isDigit(s[i-1]) || s[i-1] == 'D') {
				// an fd annotation: skip to its matching '>'
				ann, _ := cutAnnotation(s[i:])
				i += len(ann) + 1
			}
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" || len(out) > 0 {
		out = append(out, t)
	}
	return out
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// unquote decodes an strace string literal ("..." with C escapes, maybe
// followed by "..." when cut at -s).
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"':
			return b.String(), true
		case ch == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'v':
				b.WriteByte('\v')
			case 'f':
				b.WriteByte('\f')
			case 'x':
				if i+2 < len(s) {
					if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
						b.WriteByte(byte(v))
						i += 2
						continue
					}
				}
				b.WriteByte('x')
			default:
				if e >= '0' && e <= '7' {
					j := i
					for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
						j++
					}
					v, _ := strconv.ParseUint(s[i:j], 8, 8)
					b.WriteByte(byte(v))
					i = j - 1
					continue
				}
				b.WriteByte(e)
			}
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), false
}

// fdArg splits "3</path>" or "AT_FDCWD</cwd>" into the fd number and the
// annotation.
func fdArg(s string) (int, string) {
	num, ann := s, ""
	if i := strings.IndexByte(s, '<'); i >= 0 {
		num = s[:i]
		ann, _ = cutAnnotation(s[i:])
	}
	if num == "AT_FDCWD" {
		return -100, ann
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return -1, ann
	}
	return n, ann
}

// annPath returns the file path of an fd annotation ("/dev/null<char 1:3>"
// → "/dev/null"), or "" when it names no file.
func annPath(ann string) string {
	if !strings.HasPrefix(ann, "/") {
		return ""
	}
	if i := strings.IndexByte(ann, '<'); i >= 0 {
		return ann[:i]
	}
	return ann
}

// parseArray parses ["a", "b", ...] into its strings.
func parseArray(s string) []string {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' {
		return nil
	}
	end := strings.LastIndexByte(s, ']')
	if end < 0 {
		return nil
	}
	var out []string
	for _, el := range splitArgs(s[1:end]) {
		if v, ok := unquote(el); ok || strings.HasPrefix(el, `"`) {
			out = append(out, v)
		}
	}
	return out
}

// socket describes an fd annotation of a socket.
type socket struct {
	proto  string // "tcp", "udp"
	family byte   // '4', '6', or 'u' for unix and others
	local  string // "ip:port" when bound or connected
	remote string // "ip:port" when connected
}

// parseSocket reads "TCP:[127.0.0.3:18000->127.0.0.1:56380]",
// "TCPv6:[[::1]:80]", "UNIX-STREAM:[123]", "TCP:[35839]".
func parseSocket(ann string) (socket, bool) {
	kind, rest, ok := strings.Cut(ann, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return socket{}, false
	}
	rest = strings.TrimSuffix(rest, "]")
	var s socket
	switch kind {
	case "TCP":
		s.proto, s.family = "tcp", '4'
	case "UDP":
		s.proto, s.family = "udp", '4'
	case "TCPv6":
		s.proto, s.family = "tcp", '6'
	case "UDPv6":
		s.proto, s.family = "udp", '6'
	default:
		return socket{family: 'u'}, true
	}
	if !strings.Contains(rest, ":") { // just an inode: not bound yet
		return s, true
	}
	l, r, connected := strings.Cut(rest, "->")
	s.local = normAddr(l)
	if connected {
		s.remote = normAddr(r)
	}
	return s, true
}

// normAddr turns strace's "[::1]:80" into Falco's "::1:80".
func normAddr(a string) string {
	if strings.HasPrefix(a, "[") {
		if i := strings.Index(a, "]:"); i > 0 {
			return a[1:i] + ":" + a[i+2:]
		}
	}
	return a
}

var (
	sinPortRE = regexp.MustCompile(`sin6?_port=htons\((\d+)\)`)
	sinAddrRE = regexp.MustCompile(`inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"`)
)

// parseSockaddr reads {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.2.3.4")}.
func parseSockaddr(s string) (family byte, addr string) {
	switch {
	case strings.Contains(s, "sa_family=AF_INET6"):
		family = '6'
	case strings.Contains(s, "sa_family=AF_INET"):
		family = '4'
	case strings.Contains(s, "sa_family=AF_UNIX"):
		return 'u', ""
	default:
		return 0, ""
	}
	p := sinPortRE.FindStringSubmatch(s)
	a := sinAddrRE.FindStringSubmatch(s)
	if p == nil || a == nil {
		return family, ""
	}
	ip := a[1]
	if ip == "" {
		ip = a[2]
	}
	return family, ip + ":" + p[1]
}
