package scorer

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// Field is one of Falco's output_fields, as text.
type Field struct {
	Name, Value string
}

// Fields are an event's output_fields, sorted by name, each name once. A
// sorted slice rather than a map: an event carries a dozen fields and the
// scorer reads a few of them, and building a hash table for every event
// was a tenth of decoding. In JSON it is an object of strings.
type Fields []Field

// Get returns the value of name. Up to a few dozen fields a scan is faster
// than a binary search: == rejects on the length before reading a byte,
// while an ordered comparison walks the long prefixes Falco's field names
// share ("container.image.").
func (f Fields) Get(name string) (string, bool) {
	if len(f) <= 32 {
		for i := range f {
			if f[i].Name == name {
				return f[i].Value, true
			}
		}
		return "", false
	}
	i, ok := slices.BinarySearchFunc(f, name, func(x Field, n string) int { return strings.Compare(x.Name, n) })
	if !ok {
		return "", false
	}
	return f[i].Value, true
}

// Value returns the value of name, "" when absent.
func (f Fields) Value(name string) string {
	v, _ := f.Get(name)
	return v
}

// Map returns the fields as a map (nil when there are none).
func (f Fields) Map() map[string]string {
	if len(f) == 0 {
		return nil
	}
	m := make(map[string]string, len(f))
	for _, x := range f {
		m[x.Name] = x.Value
	}
	return m
}

// FieldsOf returns m as Fields (nil when m is empty).
func FieldsOf(m map[string]string) Fields {
	if len(m) == 0 {
		return nil
	}
	f := make(Fields, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f = append(f, Field{k, m[k]})
	}
	return f
}

// SortFields returns f sorted by name (reusing f when it was sorted, which
// leaves f unusable), keeping, of a name given more than once, the last
// value given, as a map assignment would; a name whose last
// value is "<NA>" is dropped (the decoders record a JSON null or Falco's
// "<NA>" that way, so that unsetting a name costs no search). Inputs
// usually arrive sorted already (Falco writes output_fields in key order),
// which one pass checks; anything else is sorted in O(n log n)
// comparisons, whatever its order.
func SortFields(f []Field) Fields { return sortFieldsCounting(f, nil) }

// sortFieldsCounting is SortFields adding the number of name comparisons
// to *calls when calls is not nil, so that a test can bound the work.
func sortFieldsCounting(f []Field, calls *int) Fields {
	compare := nameOrder{calls}.compare
	if len(f) > smallSort {
		for i := 1; i < len(f); i++ {
			if compare(f[i-1].Name, f[i].Name) > 0 {
				return sortUnsorted(f, compare)
			}
		}
	} else {
		// Few fields: in place, stably, without allocating; one pass
		// when they are sorted.
		for i := 1; i < len(f); i++ {
			for j := i; j > 0 && compare(f[j].Name, f[j-1].Name) < 0; j-- {
				f[j], f[j-1] = f[j-1], f[j]
			}
		}
	}
	// Duplicates are adjacent in input order: keep the last, unless it
	// unsets. Nothing is written while nothing was dropped.
	w := 0
	for i := range f {
		if i+1 < len(f) && f[i+1].Name == f[i].Name || f[i].Value == NA {
			continue
		}
		if w != i {
			f[w] = f[i]
		}
		w++
	}
	clear(f[w:])
	if w == 0 {
		return nil
	}
	return Fields(f[:w])
}

// nameOrder compares names, counting the comparisons when calls is set. A
// method rather than a closure, so that the loops below inline it.
type nameOrder struct{ calls *int }

func (o nameOrder) compare(a, b string) int {
	if o.calls != nil {
		*o.calls++
	}
	return strings.Compare(a, b)
}

// smallSort is the most fields sorted by insertion: at most 120
// comparisons, cheaper than sortUnsorted's two allocations.
const smallSort = 16

// sortUnsorted sorts positions rather than Fields: an int32 moves without
// the write barriers that moving four pointers costs while the collector
// runs, and the position breaks ties, so that pdqsort (which also turns a
// reversed input around in one pass) keeps a name's values in input order.
// The result is a new slice; f is left as it was.
func sortUnsorted(f []Field, compare func(a, b string) int) Fields {
	idx := make([]int32, len(f))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if c := compare(f[a].Name, f[b].Name); c != 0 {
			return c
		}
		return int(a - b)
	})
	// Duplicates are adjacent in input order: keep the last, unless it unsets.
	out := make(Fields, 0, len(f))
	for k, i := range idx {
		if k+1 < len(idx) && f[idx[k+1]].Name == f[i].Name || f[i].Value == NA {
			continue
		}
		out = append(out, f[i])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// MarshalJSON writes f as a JSON object (keys sorted, as encoding/json
// writes a map).
func (f Fields) MarshalJSON() ([]byte, error) { return json.Marshal(f.Map()) }

// UnmarshalJSON reads a JSON object of strings.
func (f *Fields) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*f = nil
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*f = FieldsOf(m)
	return nil
}
