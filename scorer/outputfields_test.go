package scorer

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSortFieldsKeepsLastOfEachName(t *testing.T) {
	got := SortFields([]Field{{"b", "1"}, {"a", "1"}, {"c", "1"}, {"a", "2"}, {"b", "2"}, {"b", "3"}})
	want := Fields{{"a", "2"}, {"b", "3"}, {"c", "1"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("SortFields (-want +got):\n%s", d)
	}
	if SortFields(nil) != nil || SortFields([]Field{}) != nil {
		t.Error("SortFields of nothing is not nil")
	}
	for _, f := range want {
		if v, ok := got.Get(f.Name); !ok || v != f.Value {
			t.Errorf("Get(%q) = %q, %v, want %q", f.Name, v, ok, f.Value)
		}
	}
	for _, absent := range []string{"", "0", "aa", "d"} {
		if v, ok := got.Get(absent); ok {
			t.Errorf("Get(%q) = %q, want absent", absent, v)
		}
	}
}

// TestDecodeFieldsLikeAMap: output_fields decode as encoding/json fills a
// map: the last value of a name wins, and null or "<NA>" unsets it.
func TestDecodeFieldsLikeAMap(t *testing.T) {
	ev, err := DecodeJSON([]byte(`{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z","output_fields":` +
		`{"z":"1","a":"1","a":"2","n":"1","n":null,"m":"<NA>","m":"3","k":"1","k":"<NA>","b":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Fields{{"a", "2"}, {"b", "7"}, {"m", "3"}, {"z", "1"}}
	if d := cmp.Diff(want, ev.Fields); d != "" {
		t.Errorf("Fields (-want +got):\n%s", d)
	}
}

func BenchmarkFieldsGet(b *testing.B) {
	ev, err := DecodeJSON([]byte(sample))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, names := range [][]string{FieldContainerID, FieldImageRepository, FieldImageTag, FieldImageDigest, FieldNamespace, FieldPod, FieldEvtType, FieldProcName} {
			_ = ev.Field(names...)
		}
	}
}

func TestFieldsGetManyFields(t *testing.T) {
	m := map[string]string{}
	for i := range 100 {
		m["f."+strconv.Itoa(i)] = strconv.Itoa(i)
	}
	f := FieldsOf(m)
	for k, v := range m {
		if got, ok := f.Get(k); !ok || got != v {
			t.Errorf("Get(%q) = %q, %v, want %q", k, got, ok, v)
		}
	}
	if _, ok := f.Get("f.100"); ok {
		t.Error("Get of an absent name found it")
	}
}

// TestDecodeFieldsMatchReference: duplicated and merged output_fields
// decode as encoding/json decodes them into a map (a later null clears it).
func TestDecodeFieldsMatchReference(t *testing.T) {
	head := `{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z",`
	for _, in := range []string{
		`"output_fields":{"a":"1"},"output_fields":null}`,
		`"output_fields":{"a":"1","b":"2"},"output_fields":{"a":null}}`,
		`"output_fields":{"a":"1","a":"<NA>","a":"2"}}`,
		`"output_fields":{"b":"1","a":"x","b":null,"c":"3","b":"4"}}`,
		`"output_fields":{"a":"1"},"Output_Fields":{"b":"2","a":"<NA>"}}`,
		`"output_fields":{"a":"1"},"output_fields":{}}`,
		`"output_fields":{"z":"1","y":"2","x":"3","y":"<NA>","w":4,"x":null}}`,
	} {
		got, err := DecodeJSON([]byte(head + in))
		want, refErr := decodeJSONReference([]byte(head + in))
		if err != nil || refErr != nil {
			t.Errorf("%s: error %v, reference error %v", in, err, refErr)
			continue
		}
		if len(want.Fields) == 0 {
			want.Fields = nil
		}
		if d := cmp.Diff(want.Fields, got.Fields); d != "" {
			t.Errorf("%s: Fields (-reference +DecodeJSON):\n%s", in, d)
		}
	}
}

// TestFieldsJSONIsAnObject: through encoding/json (Event's struct tags),
// output_fields stay an object of strings, as when they were a map.
func TestFieldsJSONIsAnObject(t *testing.T) {
	f := Fields{{"a", "1"}, {"b", "<x>"}}
	b, err := json.Marshal(struct {
		F Fields `json:"output_fields"`
	}{f})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"output_fields":{"a":"1","b":"\u003cx\u003e"}}`; string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var back struct {
		F Fields `json:"output_fields"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f, back.F); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if err := json.Unmarshal([]byte(`{"output_fields":null}`), &back); err != nil || back.F != nil {
		t.Errorf("null = %v, %v; want nil Fields", back.F, err)
	}
}
