package markov

import (
	"errors"
	"fmt"
)

// Limits fixed by the layout: a History holds MaxOrder-1 symbols, and the
// context tree keys a child or a transition by its node id and a symbol of
// symbolBits bits in one uint64.
const (
	MaxOrder     = 16
	MaxVocabSize = 1 << symbolBits
	symbolBits   = 10
)

// Smoothing methods.
const (
	WittenBell = "witten-bell"
	// AbsoluteDiscount is interpolated absolute discounting (the
	// Kneser-Ney discount without continuation counts, which do not stay
	// exact under subtraction of deltas at sequence starts).
	AbsoluteDiscount = "absolute-discount"
)

// Config sets the model's shape. It is part of the encoded model: two models
// can exchange deltas only when their configs are equal.
type Config struct {
	// Order is the Markov order plus one: the number of symbols in the
	// longest n-gram counted (history of Order-1 symbols, then the symbol).
	Order int `yaml:"order"`
	// Smoothing is WittenBell or AbsoluteDiscount.
	Smoothing string `yaml:"smoothing"`
	// Discount is the absolute discount in (0,1); used by AbsoluteDiscount.
	Discount float64 `yaml:"discount"`
	// VocabSize caps the number of distinct symbols, including the
	// out-of-vocabulary symbol. The uniform base distribution spreads over
	// all VocabSize symbols, so an unseen symbol costs log2(VocabSize) bits
	// at most plus the back-off weights.
	VocabSize int `yaml:"vocab_size"`
}

// DefaultConfig returns the configuration chosen by measurement on ADFA-LD
// (scorer/evaluate/RESULTS.md): order 10 (nine calls of context) with the
// mean-surprise scores ranks better as the model learns more normal data,
// where order 4 with the excess band got worse.
func DefaultConfig() Config {
	return Config{Order: 10, Smoothing: WittenBell, Discount: 0.75, VocabSize: 512}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Order < 1 || c.Order > MaxOrder {
		errs = append(errs, fmt.Errorf("order: %d not in [1,%d]", c.Order, MaxOrder))
	}
	switch c.Smoothing {
	case WittenBell:
	case AbsoluteDiscount:
		if !(c.Discount > 0 && c.Discount < 1) {
			errs = append(errs, fmt.Errorf("discount: %v not in (0,1)", c.Discount))
		}
	default:
		errs = append(errs, fmt.Errorf("smoothing: %q not %q or %q", c.Smoothing, WittenBell, AbsoluteDiscount))
	}
	if c.VocabSize < 2 || c.VocabSize > MaxVocabSize {
		errs = append(errs, fmt.Errorf("vocab_size: %d not in [2,%d]", c.VocabSize, MaxVocabSize))
	}
	return errors.Join(errs...)
}
