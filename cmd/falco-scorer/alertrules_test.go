package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
)

// TestAlertRulesUseServiceMetrics: every metric, and every label a selector
// names, in the shipped Prometheus alerting rules is one the service
// registers, so that renaming a metric cannot silently disarm an alert.
func TestAlertRulesUseServiceMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/helm/falco-scorer/files/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}

	svc, err := newService(testConfig(t.TempDir()), zerolog.Nop(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.closeSinks(); svc.db.Close() })
	labels := registeredLabels(t, svc.reg)

	metricRe := regexp.MustCompile(`\b(falco_scorer_[a-z0-9_]+)(\{[^}]*\})?`)
	labelRe := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	rules := 0
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			rules++
			uses := metricRe.FindAllStringSubmatch(r.Expr, -1)
			if len(uses) == 0 {
				t.Errorf("%s: expr uses no falco_scorer metric: %s", r.Alert, r.Expr)
			}
			for _, u := range uses {
				name := u[1]
				known, ok := labels[name]
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, cut := strings.CutSuffix(name, suffix); !ok && cut {
						known, ok = labels[base]
					}
				}
				if !ok {
					t.Errorf("%s: metric %s is not registered by the service", r.Alert, name)
					continue
				}
				for _, l := range labelRe.FindAllStringSubmatch(u[2], -1) {
					if !known[l[1]] {
						t.Errorf("%s: %s has no label %q", r.Alert, name, l[1])
					}
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("no alerting rules found")
	}
}

// registeredLabels returns, per metric name registered in reg, its
// variable label names (parsed from Desc.String: the names are unexported).
func registeredLabels(t *testing.T, reg *prometheus.Registry) map[string]map[string]bool {
	t.Helper()
	descRe := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	out := map[string]map[string]bool{}
	for d := range ch {
		m := descRe.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read descriptor %s", d)
		}
		ls := map[string]bool{}
		for _, l := range strings.Split(m[2], ",") {
			if l != "" {
				ls[l] = true
			}
		}
		out[m[1]] = ls
	}
	if len(out) == 0 {
		t.Fatal("the registry describes no metrics")
	}
	return out
}
