package markov

import (
	"encoding/binary"
	"fmt"
	"math"
)

var smoothingCodes = []string{WittenBell, AbsoluteDiscount}

// MarshalBinary encodes the model: magic, version, config, the names of the
// symbols its counts use, then the learned events (as in a Delta). The
// encoding is deterministic: equal counts give equal bytes, whatever the
// learning order, and symbols that were interned but never counted are
// left out. The pending delta is not part of the encoding.
func (m *Model) MarshalBinary() ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	top := m.cfg.Order - 1
	d := m.exportLocked(func(yield func(eventKey, int64)) {
		m.trans.all(func(tk uint64, c *uint64) {
			if id := int32(tk >> symbolBits); int(m.nodes[id].depth) == top {
				yield(m.keyOf(id, Symbol(tk&symbolMask)), int64(*c))
			}
		})
		for k, c := range m.short {
			yield(k, int64(c))
		}
	})
	b := []byte(modelMagic)
	b = append(b, formatVersion, byte(m.cfg.Order))
	code := byte(0)
	for i, s := range smoothingCodes {
		if s == m.cfg.Smoothing {
			code = byte(i)
		}
	}
	b = append(b, code)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.cfg.Discount))
	b = binary.AppendUvarint(b, uint64(m.cfg.VocabSize))
	b = appendNames(b, d.names)
	return appendEntries(b, d.entries, false), nil
}

// Unmarshal decodes a model written by MarshalBinary (this version or
// version 1, whose orders are at most 6).
func Unmarshal(b []byte) (*Model, error) {
	r := reader{b: b}
	v, err := r.header(modelMagic)
	if err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	var cfg Config
	cfg.Order = int(r.byte())
	if c := int(r.byte()); c < len(smoothingCodes) {
		cfg.Smoothing = smoothingCodes[c]
	}
	cfg.Discount = r.float()
	cfg.VocabSize = int(min(r.uvarint(), MaxVocabSize+1))
	if r.err != nil {
		return nil, fmt.Errorf("decode model: %w", r.err)
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	names := r.names()
	es := r.entries(v, cfg.Order, len(names), false)
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	if err := m.applyLocked(names, es, 1); err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	return m, nil
}
