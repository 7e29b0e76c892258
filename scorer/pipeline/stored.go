package pipeline

import (
	"encoding/json"
	"math"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
)

// imageMeta is the image's state as the store keeps it (Meta bytes).
//
// A threshold not calibrated yet (+Inf in memory) is stored as null. Stores
// written before that hold 0 for it, so a stored 0 also reads as not
// calibrated: a window threshold is a quantile of window scores, means of
// surprises ≥ 0, so 0 would alert on every window; an end threshold of
// exactly 0 is a coincidence of the histogram, and reading it as not
// calibrated only recalibrates it from the stored sample at the next exit.
// Negative end thresholds are real (end scores are surprise minus entropy)
// and are kept. Older binaries read null as 0, as they always did.
type imageMeta struct {
	Version      int                `json:"v"`
	State        string             `json:"state"`
	Threshold    *float64           `json:"threshold"`
	EndThreshold *float64           `json:"end_threshold"`
	Since        time.Time          `json:"since"`
	Graduated    time.Time          `json:"graduated,omitzero"`
	LastSeen     time.Time          `json:"last_seen"`
	Inherited    string             `json:"inherited_from,omitempty"`
	Convergence  markov.Convergence `json:"convergence"`
	Win          calib              `json:"win_calibration"`
	End          calib              `json:"end_calibration"`
	BlockRates   []float64          `json:"block_rates,omitempty"`
	// LearningFrom is the event time learning (re)started at, for
	// learning_min_duration across restarts.
	LearningFrom time.Time `json:"learning_from,omitzero"`
	// Symbols names the symbol language the counts are in; buckets before
	// SymbolsSince's are of an earlier language and are not loaded.
	// Version 1 metas had no Symbols: their counts are of evt.type alone.
	Symbols      string    `json:"symbols"`
	SymbolsSince time.Time `json:"symbols_since,omitzero"`
}

// imageMetaVersion 2 added Symbols; version 1 is still read.
const imageMetaVersion = 2

// DescribeMeta decodes an image's stored meta for admin output (state,
// thresholds, maturity). It returns nil for meta it cannot read.
func DescribeMeta(meta []byte) map[string]any {
	var m imageMeta
	if json.Unmarshal(meta, &m) != nil {
		return nil
	}
	thr := func(p *float64) any { // nil (JSON null): not calibrated
		if t := storedThreshold(p); !math.IsInf(t, 1) {
			return t
		}
		return nil
	}
	// Absent, not zero: a time or a name the baseline does not have.
	opt := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	c := m.Convergence
	out := map[string]any{
		"state": m.State, "threshold": thr(m.Threshold), "end_threshold": thr(m.EndThreshold),
		"since": opt(m.Since), "graduated": opt(m.Graduated), "last_seen": opt(m.LastSeen),
		"learned_events": c.Events, "new_transition_rate": c.LastRate,
		"calibration_samples": m.Win.n(),
	}
	if m.Inherited != "" {
		out["inherited_from"] = m.Inherited
	}
	if m.State != scorer.StateMonitoring {
		// Progress towards graduation: learning_blocks consecutive blocks
		// of learning_block_events events whose rate of new (previous,
		// symbol) pairs is at most new_transition_rate (or a flat learning
		// curve), and enough held-out scores to calibrate the threshold.
		g := map[string]any{
			"converged_blocks": c.Streak, "blocks_needed": c.Blocks, "block_events": c.Block,
			"events_in_block": c.InBlock, "rate_bound": c.Bound,
		}
		if !m.LearningFrom.IsZero() {
			// learning_min_duration counts from here, in event time.
			g["learning_from"] = m.LearningFrom
		}
		out["graduation"] = g
	}
	return out
}

// takeDelta takes the counts img learned since its last flush as a delta
// for bucket, with the meta a flush may write (storedMeta).
func (img *image) takeDelta(bucket time.Time) (scorer.BaselineDelta, error) {
	blob, err := img.model.TakeDelta().MarshalBinary()
	if err != nil {
		return scorer.BaselineDelta{}, err
	}
	img.dirty = false
	return scorer.BaselineDelta{Image: img.key, Bucket: bucket, Counts: blob, Meta: img.storedMeta()}, nil
}

// storedThreshold reads a stored threshold: null, or the 0 that older
// stores wrote for +Inf, is not calibrated (see imageMeta).
func storedThreshold(p *float64) float64 {
	if p == nil || *p == 0 {
		return math.Inf(1)
	}
	return *p
}

func applyCounts(m *markov.Model, blob []byte, sign int) error {
	var d markov.Delta
	if err := d.UnmarshalBinary(blob); err != nil {
		return err
	}
	return m.Apply(d, sign)
}

// storedMeta is the meta a flush writes: none for a stand-in (retryLoad),
// whose state must not replace the stored baseline's.
func (img *image) storedMeta() []byte {
	if !img.retryLoad.IsZero() {
		return nil
	}
	return img.meta()
}

// meta encodes the image's state for the store.
func (img *image) meta() []byte {
	b, _ := json.Marshal(imageMeta{
		Version: imageMetaVersion, State: img.state,
		Threshold: calibrated(img.threshold), EndThreshold: calibrated(img.endThreshold),
		Since: img.since, Graduated: img.graduated, LastSeen: img.lastSeen, Inherited: img.inherited,
		Convergence: img.conv, Win: img.win, End: img.end, BlockRates: img.blockRates,
		Symbols: img.symbols, SymbolsSince: img.symbolsSince, LearningFrom: img.learnFrom,
	})
	return b
}

// calibrated is the stored form of a threshold: nil (null) for +Inf, not
// calibrated.
func calibrated(f float64) *float64 {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	return &f
}
