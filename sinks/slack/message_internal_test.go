package slack

import (
	"testing"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func TestProcessTextNamesTreeRoot(t *testing.T) {
	s := scorer.Subject{Process: "perl", PID: 21224, Parent: "sh"}
	if got, want := processText(s), "perl (pid 21224) ← sh"; got != want {
		t.Errorf("processText() = %q, want %q", got, want)
	}
	s.TreeRootPID, s.TreeRoot = 21223, "sh"
	if got, want := processText(s), "perl (pid 21224) ← sh, tree of sh (pid 21223)"; got != want {
		t.Errorf("processText(tree alert) = %q, want %q", got, want)
	}
}
