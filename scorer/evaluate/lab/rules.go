package lab

import "strings"

// The converter's copy of rules/falco-scorer_rules.yaml: what each rule
// observes and prints. TestConverterFollowsRules fails when the rules file
// changes any of it, so a change to the rules is a change here too (and a
// re-conversion of the lab).

// ruleSpec is one observation rule.
type ruleSpec struct {
	Name     string
	EvtTypes []string
	Tags     []string
	Output   string // the output template, whitespace-normalized
}

const commonOutput = "container_id=%container.id container_name=%container.name " +
	"image=%container.image.repository tag=%container.image.tag digest=%container.image.digest " +
	"ns=%k8s.ns.name pod=%k8s.pod.name " +
	"proc=%proc.name pid=%proc.pid ppid=%proc.ppid parent=%proc.pname exepath=%proc.exepath cmdline=%proc.cmdline " +
	"user=%user.name uid=%user.uid"

// Rule indexes into ruleSpecs.
const (
	ruleProcess = iota
	ruleFile
	ruleNetwork
	rulePrivilege
)

var ruleSpecs = []ruleSpec{
	ruleProcess: {
		Name:     "falco-scorer process observation",
		EvtTypes: []string{"execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit"},
		Tags:     []string{"falco_scorer", "falco_scorer_observation", "container", "process"},
		Output:   "falco-scorer observation evt_type=%evt.type res=%evt.res " + commonOutput,
	},
	ruleFile: {
		Name: "falco-scorer file observation",
		EvtTypes: []string{"open", "openat", "openat2", "creat",
			"chmod", "fchmod", "fchmodat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
			"symlink", "symlinkat", "link", "linkat", "mkdir", "mkdirat"},
		Tags:   []string{"falco_scorer", "falco_scorer_observation", "container", "filesystem"},
		Output: "falco-scorer observation evt_type=%evt.type res=%evt.res file=%fd.name path=%fs.path.name flags=%evt.arg.flags mode=%evt.arg.mode " + commonOutput,
	},
	ruleNetwork: {
		Name:     "falco-scorer network observation",
		EvtTypes: []string{"connect", "accept", "accept4", "bind", "listen"},
		Tags:     []string{"falco_scorer", "falco_scorer_observation", "container", "network"},
		Output:   "falco-scorer observation evt_type=%evt.type res=%evt.res connection=%fd.name l4proto=%fd.l4proto " + commonOutput,
	},
	rulePrivilege: {
		Name: "falco-scorer privilege observation",
		EvtTypes: []string{"setuid", "setgid", "setresuid", "setresgid", "capset", "ptrace", "mount", "umount",
			"unshare", "setns", "chroot", "init_module", "finit_module", "bpf", "userfaultfd"},
		Tags:   []string{"falco_scorer", "falco_scorer_observation", "container", "users"},
		Output: "falco-scorer observation evt_type=%evt.type res=%evt.res " + commonOutput,
	},
}

// The rules' lists, as the converter applies them.
var (
	sensitivePaths = []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/pam.d", "/root", "/var/run/secrets", "/run/secrets", "/etc/kubernetes", "/etc/ssh"}
	pseudoFS       = []string{"/proc", "/sys", "/dev"}
	excludedProcs  = []string{"falco", "falcoctl", "falco-scorer"}
)

// implementedMacros are the rules' macros whose semantics the converter
// implements (in Converter.handle), whitespace-normalized. Any change to one
// of them in the rules file fails TestConverterFollowsRules until the
// converter is changed to match.
var implementedMacros = map[string]string{
	"falco_scorer_excluded":    "(proc.name in (falco_scorer_excluded_procs) or k8s.ns.name in (falco_scorer_excluded_namespaces) or container.image.repository in (falco_scorer_excluded_images))",
	"falco_scorer_scope":       `(container.id != host and container.id != "" and not falco_scorer_excluded)`,
	"falco_scorer_exec":        "(evt.type in (execve, execveat) and evt.dir = <)",
	"falco_scorer_fork":        "(evt.type in (clone, clone3, fork, vfork) and evt.dir = < and evt.rawres > 0 and not evt.arg.flags contains CLONE_THREAD)",
	"falco_scorer_exit":        "(evt.type = procexit and thread.ismain = true)",
	"falco_scorer_open":        "(evt.type in (open, openat, openat2, creat) and evt.dir = < and fd.typechar = f and ((evt.is_open_write = true and not fd.name pmatch (falco_scorer_pseudo_fs)) or evt.is_open_create = true or evt.is_open_exec = true or fd.name pmatch (falco_scorer_sensitive_paths)))",
	"falco_scorer_file_change": "(evt.type in (chmod, fchmod, fchmodat, unlink, unlinkat, rename, renameat, renameat2, symlink, symlinkat, link, linkat, mkdir, mkdirat) and evt.dir = <)",
	"falco_scorer_net":         "(evt.type in (connect, accept, accept4, bind, listen) and evt.dir = < and fd.typechar in (4, 6))",
	"falco_scorer_priv":        "(evt.type in (setuid, setgid, setresuid, setresgid, capset, ptrace, mount, umount, unshare, setns, chroot, init_module, finit_module, bpf, userfaultfd) and evt.dir = <)",
}

// ruleConditions are the rules' conditions, whitespace-normalized.
var ruleConditions = map[string]string{
	"falco-scorer process observation":   "(falco_scorer_exec or falco_scorer_fork or falco_scorer_exit) and falco_scorer_scope",
	"falco-scorer file observation":      "(falco_scorer_open or falco_scorer_file_change) and falco_scorer_scope",
	"falco-scorer network observation":   "falco_scorer_net and falco_scorer_scope",
	"falco-scorer privilege observation": "falco_scorer_priv and falco_scorer_scope",
}

// evtTypeOf maps an strace system-call name to the Falco evt.type it
// produces. umount2, the only unmount call on x86_64, is "umount2" in
// current Falco drivers, which the rules (listing "umount") do not observe.
func evtTypeOf(syscall string) string { return syscall }

// ruleOf returns the rule that observes evt.type t, or -1.
func ruleOf(t string) int {
	for i, r := range ruleSpecs {
		for _, x := range r.EvtTypes {
			if x == t {
				return i
			}
		}
	}
	return -1
}

// pmatch is Falco's path-prefix match: p is one of the prefixes or below one.
func pmatch(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// outputFields returns the %fields of a template in order.
func outputFields(tmpl string) []string {
	var out []string
	for _, w := range strings.Fields(tmpl) {
		if _, f, ok := strings.Cut(w, "=%"); ok {
			out = append(out, f)
		}
	}
	return out
}

// StraceCalls returns the system calls a recording must trace, by strace's
// names: every evt.type the rules observe (procexit comes from strace's exit
// markers; "umount" is traced as umount2, the only unmount call on x86_64,
// so that the recording shows what the rules miss), plus close, from which
// the converter learns a connect's source port.
func StraceCalls() []string {
	var out []string
	for _, r := range ruleSpecs {
		for _, t := range r.EvtTypes {
			switch t {
			case "procexit":
				continue
			case "umount":
				t = "umount2"
			}
			out = append(out, t)
		}
	}
	return append(out, "close")
}
