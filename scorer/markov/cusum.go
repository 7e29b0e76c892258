package markov

import "math"

// Cusum is the online score of a sequence for sparse, argument-rich input:
// the cumulative sum of per-event surprise above an allowance K (Page's
// CUSUM), S_t = max(0, S_{t-1} + surprise_t − K). Events as likely as usual
// (surprise below K) wear the score down; a run of unlikely events builds
// it up at once, from a sequence's first event on. So a process of three
// events (a shell that execs a downloader and exits) can alert, one rare
// event among familiar ones mostly cannot, and a score never needs a window
// to warm up. In bits, like the surprises it sums.
type Cusum struct {
	K   float64 // allowance, bits per event
	Cap float64 // most one event adds, in bits (0: no cap); see DefaultCusumCap
	S   float64 // current score
}

// DefaultCusumAllowance is K: an event less likely than one in 2^K given its
// history adds to the score.
const DefaultCusumAllowance = 6

// DefaultCusumCap bounds one event's surprise: a never-seen step after a
// long, rigid run of familiar ones costs tens of bits under the smoothed
// model (every back-off level is nearly certain), which would let one odd
// event in a long-lived process outweigh several in a short one. Capped,
// the score counts how many unlikely events came close together.
const DefaultCusumCap = 16

// DefaultCusumThreshold is the online threshold in bits: one and a half
// capped events' worth above the allowance (DefaultCusumCap −
// DefaultCusumAllowance = 10 bits an event). One never-seen step among
// familiar ones (a new endpoint after a rollout, a maintenance command) does
// not alert on its own; two close together, or one followed by further
// unlikely steps, do. The threshold is in the model's own unit: a surprise
// of s bits is an event the baseline gives probability 2^-s, so it needs no
// per-image calibration (see the README's detection section for how it was
// chosen on the lab).
const DefaultCusumThreshold = 15

// cusumMaxEvents bounds the score at this many capped events' worth: a
// long-lived sequence that met a burst of novelty (a young baseline, a
// rollout) would otherwise carry a score of thousands of bits for as many
// events, which says nothing more than "clearly anomalous" and would take
// as long to wear down.
const cusumMaxEvents = 4

// Push adds one event's surprise and returns the new score.
func (c *Cusum) Push(surprise float64) float64 {
	if math.IsNaN(surprise) {
		return c.S
	}
	if c.Cap > 0 {
		surprise = min(surprise, c.Cap)
	}
	c.S = min(max(0, c.S+surprise-c.K), cusumMaxEvents*max(c.Cap, c.K))
	return c.S
}
