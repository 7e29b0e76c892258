package lab

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// rulesFile is the shipped Falco rules file, read from the source tree (not
// through package rules, so that this package depends on no scorer code).
const rulesFile = "../../../rules/falco-scorer_rules.yaml"

type falcoItem struct {
	Rule      string   `yaml:"rule"`
	Macro     string   `yaml:"macro"`
	List      string   `yaml:"list"`
	Condition string   `yaml:"condition"`
	Output    string   `yaml:"output"`
	Tags      []string `yaml:"tags"`
	Items     []string `yaml:"items"`
	Priority  string   `yaml:"priority"`
}

func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

var (
	tokenRE   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*`)
	evtInRE   = regexp.MustCompile(`evt\.type in \(([^)]*)\)`)
	evtEqRE   = regexp.MustCompile(`evt\.type = ([a-z0-9_]+)`)
	outFldsRE = regexp.MustCompile(`%([a-z0-9_]+(?:\.[a-zA-Z0-9_]+)+)`)
)

func expandMacros(cond string, macros map[string]string, depth int) string {
	if depth > 10 {
		return cond
	}
	return tokenRE.ReplaceAllStringFunc(cond, func(tok string) string {
		if m, ok := macros[tok]; ok {
			return "(" + expandMacros(m, macros, depth+1) + ")"
		}
		return tok
	})
}

func evtTypes(cond string) []string {
	var out []string
	for _, m := range evtInRE.FindAllStringSubmatch(cond, -1) {
		for _, t := range strings.Split(m[1], ",") {
			out = append(out, strings.TrimSpace(t))
		}
	}
	for _, m := range evtEqRE.FindAllStringSubmatch(cond, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestConverterFollowsRules fails when rules/falco-scorer_rules.yaml and the
// converter's tables disagree: rules, their evt.types, output templates
// (hence output fields), tags, priority, the lists and the macros whose
// semantics the converter implements.
func TestConverterFollowsRules(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var items []falcoItem
	if err := yaml.Unmarshal(b, &items); err != nil {
		t.Fatalf("parse %s: %v", rulesFile, err)
	}
	macros, lists := map[string]string{}, map[string][]string{}
	var ruleItems []falcoItem
	for _, it := range items {
		switch {
		case it.Macro != "":
			macros[it.Macro] = norm(it.Condition)
		case it.List != "":
			lists[it.List] = it.Items
		case it.Rule != "":
			ruleItems = append(ruleItems, it)
		}
	}

	for name, want := range implementedMacros {
		if got, ok := macros[name]; !ok {
			t.Errorf("macro %s: not in the rules file; the converter implements it", name)
		} else if got != want {
			t.Errorf("macro %s changed in the rules file:\n got  %s\n want %s\nchange Converter.handle to match, then implementedMacros", name, got, want)
		}
	}
	for name := range macros {
		if _, ok := implementedMacros[name]; !ok {
			t.Errorf("macro %s: in the rules file but not implemented by the converter", name)
		}
	}
	for _, l := range []struct {
		name string
		have []string
	}{
		{"falco_scorer_sensitive_paths", sensitivePaths},
		{"falco_scorer_pseudo_fs", pseudoFS},
		{"falco_scorer_excluded_procs", excludedProcs},
		{"falco_scorer_excluded_namespaces", nil},
		{"falco_scorer_excluded_images", nil},
	} {
		got, ok := lists[l.name]
		if !ok {
			t.Errorf("list %s: not in the rules file", l.name)
			continue
		}
		if !slices.Equal(got, l.have) {
			t.Errorf("list %s = %v in the rules file, converter has %v", l.name, got, l.have)
		}
	}

	if len(ruleItems) != len(ruleSpecs) {
		t.Errorf("rules file has %d rules, converter %d", len(ruleItems), len(ruleSpecs))
	}
	for _, it := range ruleItems {
		i := slices.IndexFunc(ruleSpecs, func(r ruleSpec) bool { return r.Name == it.Rule })
		if i < 0 {
			t.Errorf("rule %q: not known to the converter", it.Rule)
			continue
		}
		spec := ruleSpecs[i]
		if got, want := norm(it.Condition), ruleConditions[it.Rule]; got != want {
			t.Errorf("rule %q condition = %s, converter implements %s", it.Rule, got, want)
		}
		exp := expandMacros(it.Condition, macros, 0)
		got := evtTypes(exp)
		want := append([]string(nil), spec.EvtTypes...)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("rule %q evt.types = %v, converter %v", it.Rule, got, want)
		}
		if got := norm(it.Output); got != norm(spec.Output) {
			t.Errorf("rule %q output =\n %s\nconverter\n %s", it.Rule, got, norm(spec.Output))
		}
		var gotFields []string
		for _, m := range outFldsRE.FindAllStringSubmatch(it.Output, -1) {
			gotFields = append(gotFields, m[1])
		}
		if !slices.Equal(gotFields, outputFields(spec.Output)) {
			t.Errorf("rule %q output fields = %v, converter %v", it.Rule, gotFields, outputFields(spec.Output))
		}
		if !slices.Equal(it.Tags, spec.Tags) {
			t.Errorf("rule %q tags = %v, converter %v", it.Rule, it.Tags, spec.Tags)
		}
		if !strings.EqualFold(it.Priority, "debug") {
			t.Errorf("rule %q priority = %s, converter emits Debug", it.Rule, it.Priority)
		}
	}
	// Every evt.type belongs to one rule only (ruleOf picks the first).
	seen := map[string]string{}
	for _, r := range ruleSpecs {
		for _, et := range r.EvtTypes {
			if prev, dup := seen[et]; dup {
				t.Errorf("evt.type %s in rules %q and %q", et, prev, r.Name)
			}
			seen[et] = r.Name
		}
	}
}

// TestEmittedFieldsAreTheRulesFields checks that every event the converter
// builds carries exactly the output fields of its rule.
func TestEmittedFieldsAreTheRulesFields(t *testing.T) {
	events := convertGolden(t, "basic")
	if len(events) == 0 {
		t.Fatal("no events")
	}
	for _, e := range events {
		i := slices.IndexFunc(ruleSpecs, func(r ruleSpec) bool { return r.Name == e.Rule })
		if i < 0 {
			t.Fatalf("event of unknown rule %q", e.Rule)
		}
		want := outputFields(ruleSpecs[i].Output)
		var got []string
		for k := range e.OutputFields {
			got = append(got, k)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s event fields = %v, want %v", e.OutputFields["evt.type"], got, want)
		}
		if !slices.Contains(ruleSpecs[i].EvtTypes, e.OutputFields["evt.type"].(string)) {
			t.Errorf("rule %q emitted evt.type %v", e.Rule, e.OutputFields["evt.type"])
		}
	}
}
