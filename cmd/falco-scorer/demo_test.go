package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `falco-scorer demo` as `make demo` does and checks the story
// it must tell: baselines graduate, the attack on checkout-api is flagged
// with an explanation, Falco alerts are forwarded, and it ends with a summary.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("demo replays 89k events; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := newRootCmd(&out, &out)
	cmd.SetArgs([]string{"demo"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"graduated: learning → monitoring",
		"⚑ Falco alert \"Terminal shell in container\" in ghcr.io/acme/checkout-api:2.3.1",
		"least likely transitions:",
		"summary after",
		"events posted and acknowledged: 131219",
		"the attack on ghcr.io/acme/checkout-api:2.3.1 was flagged with its explanation",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	attack := regexp.MustCompile(`✱ behaviour anomaly, priority \w+, in ghcr\.io/acme/checkout-api:2\.3\.1 .* pid 666\d\d\n\s+score [\d.]+ vs threshold [\d.]+ .*\n\s+least likely transitions:\n\s+\S.*→`)
	if !attack.MatchString(s) {
		t.Errorf("demo output has no anomaly alert on an attack process with its explanation:\n%s", s)
	}
}
