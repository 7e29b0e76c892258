package scorer

import (
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
