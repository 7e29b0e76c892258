package rules

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// requiredOutputFields are the Falco fields the scorer reads from
// output_fields; every observation rule must print all of them.
var requiredOutputFields = []string{
	"container.id", "container.name", "container.image.repository", "container.image.tag",
	"container.image.digest", "k8s.ns.name", "k8s.pod.name", "proc.name", "proc.pid",
	"proc.ppid", "proc.pname", "proc.exepath", "proc.cmdline", "evt.type", "user.name", "user.uid",
}

// falcoItem is one top-level item of a Falco rules file.
type falcoItem struct {
	line int
	keys map[string]*yaml.Node
}

func (it falcoItem) str(k string) string {
	if n := it.keys[k]; n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func loadFalcoItems(t *testing.T) []falcoItem {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(FalcoRules(), &doc); err != nil {
		t.Fatalf("parse %s: %v", FalcoRulesFile, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.SequenceNode {
		t.Fatalf("%s: top level must be a list", FalcoRulesFile)
	}
	var items []falcoItem
	for _, n := range doc.Content[0].Content {
		if n.Kind != yaml.MappingNode {
			t.Fatalf("%s:%d: item is not a mapping", FalcoRulesFile, n.Line)
		}
		it := falcoItem{line: n.Line, keys: map[string]*yaml.Node{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := it.keys[k]; dup {
				t.Errorf("%s:%d: duplicate key %q", FalcoRulesFile, n.Content[i].Line, k)
			}
			it.keys[k] = n.Content[i+1]
		}
		items = append(items, it)
	}
	return items
}

// knownFields reads testdata/falco_fields.txt: exact names, and names that
// take an argument ("[arg]").
func knownFields(t *testing.T) (exact, withArg map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("testdata/falco_fields.txt")
	if err != nil {
		t.Fatalf("read field list: %v", err)
	}
	exact, withArg = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, ok := strings.CutSuffix(line, " [arg]"); ok {
			withArg[name] = true
			exact[name] = true
			continue
		}
		if strings.ContainsAny(line, " \t") {
			t.Fatalf("field list: malformed line %q", line)
		}
		exact[line] = true
	}
	return exact, withArg
}

// isKnownField reports whether ref (as written in a rule: "proc.aname[2]",
// "evt.arg.flags", "proc.name") is a documented Falco field.
func isKnownField(ref string, exact, withArg map[string]bool) bool {
	if i := strings.IndexByte(ref, '['); i >= 0 {
		return withArg[ref[:i]]
	}
	if exact[ref] {
		return true
	}
	for name := range withArg {
		if strings.HasPrefix(ref, name+".") {
			return true
		}
	}
	return false
}

// fieldClasses are the syscall field classes: a condition token starting
// with one of these is a field reference.
var fieldClasses = []string{"evt", "syscall", "proc", "thread", "user", "group", "container", "fd", "fs", "k8s", "k8smeta"}

var (
	condTokenRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*(?:\[[^\]]*\])?`)
	outFieldRE  = regexp.MustCompile(`%([a-z0-9_]+(?:\.[a-zA-Z0-9_]+)+(?:\[[^\]]*\])?)`)
)

// conditionFields returns the field references and the bare identifiers
// (macros, lists, operators, values) in a condition.
func conditionFields(cond string) (fields, idents []string) {
	for _, tok := range condTokenRE.FindAllString(cond, -1) {
		class, _, dotted := strings.Cut(tok, ".")
		if dotted && slices.Contains(fieldClasses, class) {
			fields = append(fields, tok)
			continue
		}
		idents = append(idents, tok)
	}
	return fields, idents
}

func TestFalcoRulesStructure(t *testing.T) {
	items := loadFalcoItems(t)
	macros, lists := map[string]string{}, map[string]bool{}
	var rules []falcoItem
	sawEngine, sawContainerPlugin := false, false
	for _, it := range items {
		kinds := 0
		for _, k := range []string{"rule", "macro", "list", "required_engine_version", "required_plugin_versions"} {
			if _, ok := it.keys[k]; ok {
				kinds++
			}
		}
		if kinds != 1 {
			t.Errorf("%s:%d: item has %d kind keys, want exactly 1 of rule/macro/list/required_*", FalcoRulesFile, it.line, kinds)
			continue
		}
		switch {
		case it.keys["required_engine_version"] != nil:
			sawEngine = true
		case it.keys["required_plugin_versions"] != nil:
			for _, p := range it.keys["required_plugin_versions"].Content {
				var pv struct{ Name, Version string }
				if err := p.Decode(&pv); err != nil {
					t.Errorf("%s:%d: required_plugin_versions entry: %v", FalcoRulesFile, p.Line, err)
				}
				if pv.Name == "container" && pv.Version != "" {
					sawContainerPlugin = true
				}
			}
		case it.keys["macro"] != nil:
			if it.str("condition") == "" {
				t.Errorf("%s:%d: macro %q has no condition", FalcoRulesFile, it.line, it.str("macro"))
			}
			macros[it.str("macro")] = it.str("condition")
		case it.keys["list"] != nil:
			if n := it.keys["items"]; n == nil || n.Kind != yaml.SequenceNode {
				t.Errorf("%s:%d: list %q has no items sequence", FalcoRulesFile, it.line, it.str("list"))
			}
			lists[it.str("list")] = true
		case it.keys["rule"] != nil:
			rules = append(rules, it)
		}
	}
	if !sawEngine {
		t.Errorf("%s: no required_engine_version", FalcoRulesFile)
	}
	if !sawContainerPlugin {
		t.Errorf("%s: no required_plugin_versions entry for the container plugin (Falco 0.41+)", FalcoRulesFile)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", FalcoRulesFile)
	}

	allowedRuleKeys := []string{"rule", "desc", "condition", "output", "priority", "tags", "enabled", "source", "exceptions"}
	for _, r := range rules {
		name := r.str("rule")
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"rule", "desc", "condition", "output", "priority", "tags"} {
				if r.keys[k] == nil {
					t.Errorf("%s:%d: missing key %q", FalcoRulesFile, r.line, k)
				}
			}
			for k := range r.keys {
				if !slices.Contains(allowedRuleKeys, k) {
					t.Errorf("%s:%d: unexpected key %q", FalcoRulesFile, r.line, k)
				}
			}
			p, err := scorer.ParsePriority(r.str("priority"))
			if err != nil {
				t.Errorf("priority %q: %v", r.str("priority"), err)
			} else if p != scorer.PriorityDebug {
				t.Errorf("priority = %s, want Debug (observations must stay below every alert)", p)
			}
			var tags []string
			if n := r.keys["tags"]; n != nil {
				if err := n.Decode(&tags); err != nil {
					t.Errorf("tags: %v", err)
				}
			}
			for _, want := range []string{TagScorer, TagObservation} {
				if !slices.Contains(tags, want) {
					t.Errorf("tags = %v, want %q among them", tags, want)
				}
			}
			out := r.str("output")
			var printed []string
			for _, m := range outFieldRE.FindAllStringSubmatch(out, -1) {
				printed = append(printed, m[1])
			}
			for _, f := range requiredOutputFields {
				if !slices.Contains(printed, f) {
					t.Errorf("output lacks %%%s (the scorer reads it)", f)
				}
			}
			// Expanded condition must restrict evt.type, or Falco warns and
			// evaluates the rule on every event.
			if exp := expand(r.str("condition"), macros, 0); !strings.Contains(exp, "evt.type") {
				t.Errorf("condition does not restrict evt.type after macro expansion: %s", exp)
			}
		})
	}
}

// expand replaces macro names in cond by their conditions, recursively.
func expand(cond string, macros map[string]string, depth int) string {
	if depth > 10 {
		return cond
	}
	return condTokenRE.ReplaceAllStringFunc(cond, func(tok string) string {
		if m, ok := macros[tok]; ok {
			return "(" + expand(m, macros, depth+1) + ")"
		}
		return tok
	})
}

func TestFalcoRulesFieldsAreKnown(t *testing.T) {
	exact, withArg := knownFields(t)
	for _, f := range requiredOutputFields {
		if !exact[f] {
			t.Errorf("testdata/falco_fields.txt lacks %q, which the scorer reads", f)
		}
	}
	items := loadFalcoItems(t)
	defined := map[string]bool{}
	for _, it := range items {
		for _, k := range []string{"macro", "list"} {
			if n := it.str(k); n != "" {
				defined[n] = true
			}
		}
	}
	used := map[string]bool{}
	for _, it := range items {
		name := it.str("rule") + it.str("macro")
		if cond := it.str("condition"); cond != "" {
			fields, idents := conditionFields(cond)
			for _, f := range fields {
				if !isKnownField(f, exact, withArg) {
					t.Errorf("%s:%d: %s: condition uses unknown field %q", FalcoRulesFile, it.line, name, f)
				}
			}
			for _, id := range idents {
				used[id] = true
				if strings.HasPrefix(id, "falco_scorer_") && !defined[id] {
					t.Errorf("%s:%d: %s: condition uses undefined macro or list %q", FalcoRulesFile, it.line, name, id)
				}
			}
		}
		for _, m := range outFieldRE.FindAllStringSubmatch(it.str("output"), -1) {
			if !isKnownField(m[1], exact, withArg) {
				t.Errorf("%s:%d: %s: output uses unknown field %q", FalcoRulesFile, it.line, name, m[1])
			}
		}
	}
	var unused []string
	for d := range defined {
		if !used[d] {
			unused = append(unused, d)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("macros or lists defined but never used: %v", unused)
	}
}

func TestFieldReferenceParsing(t *testing.T) {
	exact := map[string]bool{"proc.name": true, "evt.arg": true, "proc.aname": true}
	withArg := map[string]bool{"evt.arg": true, "proc.aname": true}
	tests := []struct {
		ref  string
		want bool
	}{
		{"proc.name", true},
		{"proc.nam", false},
		{"evt.arg.flags", true},
		{"evt.arg[0]", true},
		{"proc.aname[2]", true},
		{"proc.name[2]", false},
		{"evt.argument", false},
	}
	for _, tt := range tests {
		if got := isKnownField(tt.ref, exact, withArg); got != tt.want {
			t.Errorf("isKnownField(%q) = %v, want %v", tt.ref, got, tt.want)
		}
	}
	fields, idents := conditionFields(`(evt.type in (execve) and not evt.arg.flags contains CLONE_THREAD and proc.aname[2] = sh) and falco_scorer_scope`)
	if want := []string{"evt.type", "evt.arg.flags", "proc.aname[2]"}; !slices.Equal(fields, want) {
		t.Errorf("conditionFields fields = %v, want %v", fields, want)
	}
	if !slices.Contains(idents, "falco_scorer_scope") || !slices.Contains(idents, "CLONE_THREAD") {
		t.Errorf("conditionFields idents = %v, want falco_scorer_scope and CLONE_THREAD among them", idents)
	}
}

func TestFalcoRulesIsACopy(t *testing.T) {
	a := FalcoRules()
	a[0] ^= 0xff
	b := FalcoRules()
	if bytes.Equal(a, b) {
		t.Fatal("FalcoRules() returned shared bytes; want a fresh copy per call")
	}
	disk, err := os.ReadFile(FalcoRulesFile)
	if err != nil {
		t.Fatalf("read %s: %v", FalcoRulesFile, err)
	}
	if !bytes.Equal(b, disk) {
		t.Errorf("FalcoRules() differs from %s on disk", FalcoRulesFile)
	}
}

// TestSymbolizerSensitivePathsMatchRules: the symbolizer keeps the exact
// path of the files whose reads the rules observe; the two lists must agree.
func TestSymbolizerSensitivePathsMatchRules(t *testing.T) {
	for _, it := range loadFalcoItems(t) {
		if it.str("list") != "falco_scorer_sensitive_paths" {
			continue
		}
		var got []string
		for _, n := range it.keys["items"].Content {
			got = append(got, n.Value)
		}
		if !slices.Equal(got, symbol.DefaultSensitivePaths) {
			t.Errorf("rules list falco_scorer_sensitive_paths = %v, symbol.DefaultSensitivePaths = %v", got, symbol.DefaultSensitivePaths)
		}
		return
	}
	t.Fatal("list falco_scorer_sensitive_paths not found")
}
