package evaluate

import (
	"strconv"
	"strings"
)

// SetMembershipReport rates a set-membership profile on the same data as
// the model: a sequence is flagged when it holds an item never seen in
// training (as deployed), and ranked by the share of its items never seen.
// Items are single calls (what the lab's profile compares: symbols) or
// n-grams of calls (stide: the classic sequence-set detector).
type SetMembershipReport struct {
	Items string  `json:"items"` // "calls" or "N-grams"
	AUC   float64 `json:"auc"`   // ranking by the share of never-seen items
	// FPRAtTPR is the false-alarm rate at the threshold that keeps 90 % of
	// the attacks, ranking by the share of never-seen items.
	FPRAtTPR float64 `json:"fpr_at_tpr90"`
	// As deployed: the share of normal and of attack sequences holding any
	// never-seen item.
	FlaggedNormal float64 `json:"flagged_normal"`
	FlaggedAttack float64 `json:"flagged_attack"`
}

// stideN is the n-gram length of the stide profile (Forrest et al. used 6).
const stideN = 6

// setMembership profiles train as sets of single calls and of stideN-grams
// and rates both on normal and attack.
func setMembership(train, normal, attack []Trace) []SetMembershipReport {
	var out []SetMembershipReport
	for _, n := range []int{1, stideN} {
		// seen[k-1] holds the k-grams of training for every k ≤ n, so a
		// trace shorter than n counts as seen when it occurs anywhere in
		// training, not only as a whole trace.
		seen := make([]map[string]bool, n)
		for k := range seen {
			seen[k] = map[string]bool{}
			for _, t := range train {
				for _, g := range ngrams(t.Calls, k+1) {
					seen[k][g] = true
				}
			}
		}
		score := func(ts []Trace) (shares []float64, flagged float64) {
			shares = make([]float64, len(ts))
			for i, t := range ts {
				gs := ngrams(t.Calls, n)
				set := seen[min(n, len(t.Calls))-1]
				novel := 0
				for _, g := range gs {
					if !set[g] {
						novel++
					}
				}
				if len(gs) > 0 {
					shares[i] = float64(novel) / float64(len(gs))
				}
				if novel > 0 {
					flagged++
				}
			}
			return shares, flagged / float64(max(len(ts), 1))
		}
		ns, nf := score(normal)
		as, af := score(attack)
		items := "calls"
		if n > 1 {
			items = strconv.Itoa(n) + "-grams"
		}
		out = append(out, SetMembershipReport{Items: items, AUC: AUC(ns, as), FPRAtTPR: FPRAtTPR(ns, as, 0.9),
			FlaggedNormal: nf, FlaggedAttack: af})
	}
	return out
}

// ngrams returns the n-grams of calls as keys (a trace shorter than n is
// one gram of its whole length; an empty one has none).
func ngrams(calls []string, n int) []string {
	if len(calls) == 0 {
		return nil
	}
	if len(calls) < n {
		return []string{strings.Join(calls, " ")}
	}
	out := make([]string, 0, len(calls)-n+1)
	for i := 0; i+n <= len(calls); i++ {
		out = append(out, strings.Join(calls[i:i+n], " "))
	}
	return out
}
