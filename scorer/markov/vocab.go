package markov

// Symbol is a small integer standing for one event name (a Falco evt.type,
// or a system-call number in eval). Symbols are local to one Model.
type Symbol uint16

// OOV is the out-of-vocabulary symbol: names not in the vocabulary, and
// names that arrive after the vocabulary is full, map to it.
const OOV Symbol = 0

// oovName is the name reported for OOV.
const oovName = "<oov>"

// vocab maps names to symbols. Symbol i (i ≥ 1) is names[i-1]; the number of
// names is capped, so hostile input cannot grow it without bound.
type vocab struct {
	ids      map[string]Symbol
	names    []string
	cap      int    // total symbols including OOV
	overflow uint64 // Intern calls refused because the vocabulary was full
}

func newVocab(capacity int) vocab {
	return vocab{ids: make(map[string]Symbol), cap: capacity}
}

func (v *vocab) lookup(name string) Symbol {
	if s, ok := v.ids[name]; ok {
		return s
	}
	return OOV
}

func (v *vocab) intern(name string) Symbol {
	if s, ok := v.ids[name]; ok {
		return s
	}
	if len(v.names)+1 >= v.cap {
		v.overflow++
		return OOV
	}
	v.names = append(v.names, name)
	s := Symbol(len(v.names))
	v.ids[name] = s
	return s
}

func (v *vocab) name(s Symbol) string {
	if s == OOV || int(s) > len(v.names) {
		return oovName
	}
	return v.names[s-1]
}
