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

// SortFields sorts f by name in place and keeps, of a name given more than
// once, the last value given, as a map assignment would; a name whose last
// value is "<NA>" is dropped (the decoders record a JSON null or Falco's
// "<NA>" that way, so that unsetting a name costs no search). Inputs
// usually arrive sorted already (Falco writes output_fields in key order),
// which one pass checks; anything else is sorted in O(n log n)
// comparisons, whatever its order.
func SortFields(f []Field) Fields { return sortFieldsWith(f, strings.Compare) }

// sortFieldsWith is SortFields comparing names with compare, so that a test
// can count the comparisons.
func sortFieldsWith(f []Field, compare func(a, b string) int) Fields {
	sorted, na := true, false
	for i := range f {
		if i > 0 && compare(f[i-1].Name, f[i].Name) >= 0 {
			sorted = false
			break
		}
		na = na || f[i].Value == NA
	}
	if sorted && !na {
		if len(f) == 0 {
			return nil
		}
		return Fields(f)
	}
	if !sorted {
		// Stable, so that a name's values stay in input order.
		slices.SortStableFunc(f, func(a, b Field) int { return compare(a.Name, b.Name) })
	}
	// Duplicates are adjacent in input order: keep the last, unless it unsets.
	out := f[:0]
	for i := range f {
		if i+1 < len(f) && f[i+1].Name == f[i].Name || f[i].Value == NA {
			continue
		}
		out = append(out, f[i])
	}
	clear(f[len(out):])
	if len(out) == 0 {
		return nil
	}
	return Fields(out)
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
