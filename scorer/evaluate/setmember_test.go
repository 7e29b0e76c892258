package evaluate

import (
	"slices"
	"testing"
)

func TestSetMembership(t *testing.T) {
	tr := func(calls ...string) Trace { return Trace{Calls: calls} }
	train := []Trace{tr("a", "b", "c", "a", "b", "c", "a")}
	normal := []Trace{tr("a", "b", "c", "a", "b", "c"), tr("b", "c", "a")}
	attack := []Trace{tr("a", "b", "x"), tr("c", "b", "a", "c", "b", "a", "c")}
	got := setMembership(train, normal, attack)
	if len(got) != 2 || got[0].Items != "calls" || got[1].Items != "6-grams" {
		t.Fatalf("setMembership items = %+v, want calls and 6-grams", got)
	}
	calls, grams := got[0], got[1]
	// Calls: only the attack with "x" holds a never-seen call.
	if calls.FlaggedNormal != 0 || calls.FlaggedAttack != 0.5 {
		t.Errorf("calls flagged normal %v attack %v, want 0 and 0.5", calls.FlaggedNormal, calls.FlaggedAttack)
	}
	// 6-grams: the reversed attack's grams are all new, and so is "a b x";
	// "b c a" is shorter than 6 and occurs inside the training trace: seen.
	if grams.FlaggedAttack != 1 || grams.FlaggedNormal != 0 {
		t.Errorf("6-grams flagged normal %v attack %v, want 0 and 1", grams.FlaggedNormal, grams.FlaggedAttack)
	}
	if g := ngrams([]string{"a", "b"}, 6); !slices.Equal(g, []string{"a b"}) {
		t.Errorf("ngrams of a short trace = %q, want the whole trace", g)
	}
}
