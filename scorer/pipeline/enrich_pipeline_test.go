package pipeline

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// TestPipelineFalcoAlertWithoutDigestJoinsItsContainer: the shipped
// observation rules print the image digest, stock Falco rules only
// repository and tag. A Falco alert from a container that is behaving
// anomalously must still be scored against that container (same baseline,
// same worker) and marked anomalous, whichever worker the tag key would
// hash to.
func TestPipelineFalcoAlertWithoutDigestJoinsItsContainer(t *testing.T) {
	st := newMemStore()
	cfg := testConfig()
	cfg.Workers = 8
	h := newHarness(t, cfg, st)
	withDigest := func(ev scorer.Event) scorer.Event {
		var m map[string]any
		if err := json.Unmarshal(ev.Raw, &m); err != nil {
			t.Fatal(err)
		}
		m["output_fields"].(map[string]any)["container.image.digest"] = "sha256:feed"
		raw, _ := json.Marshal(m)
		e, err := scorer.DecodeJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 12 {
		pid := 1000 + h.seq
		var evs []scorer.Event
		for _, e := range h.observations("c-nginx", "nginx", pid, normalTrace(rng, 400)) {
			evs = append(evs, withDigest(e))
		}
		evs = append(evs, withDigest(h.event("falco-scorer process observation", "Debug", "c-nginx", "nginx", pid, "procexit", "falco_scorer")))
		h.accept(evs)
	}
	h.settle()
	if s, _ := h.state("nginx@sha256:feed"); s != scorer.StateMonitoring {
		t.Fatalf("image state %q, want monitoring before the attack", s)
	}
	var attack []scorer.Event
	for _, e := range h.observations("c-nginx", "nginx", 66666, attackTrace(60)) {
		attack = append(attack, withDigest(e))
	}
	h.accept(attack)
	h.settle()
	h.accept([]scorer.Event{h.event("Terminal shell in container", "Notice", "c-nginx", "nginx", 66667, "execve", "shell")})
	h.settle()
	found := false
	for _, a := range st.alerts(t) {
		if a["kind"] != scorer.KindFalco {
			continue
		}
		found = true
		subj, score := a["subject"].(map[string]any), a["score"].(map[string]any)
		if subj["image"] != "nginx@sha256:feed" || score["verdict"] != scorer.VerdictAnomalous {
			t.Errorf("Falco alert: image %v verdict %v, want nginx@sha256:feed anomalous", subj["image"], score["verdict"])
		}
	}
	if !found {
		t.Fatal("no Falco alert forwarded")
	}
}
