package scorer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const limitsHead = `{"rule":"r","priority":"Info","time":"2026-11-24T12:00:00Z",`

// withFields returns an event whose output_fields object holds body.
func withFields(body string) []byte {
	return []byte(limitsHead + `"output_fields":{` + body + `}}`)
}

// reverseKeys returns n "key":"" pairs in reverse key order, each key
// keyLen bytes (at least 8) sharing a common prefix: the costliest order and
// shape for a sort that compares names.
func reverseKeys(n, keyLen int) string {
	var sb strings.Builder
	prefix := strings.Repeat("x", keyLen-8)
	for i := n - 1; i >= 0; i-- {
		if i != n-1 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"%s%08d":""`, prefix, i)
	}
	return sb.String()
}

// shuffledKeys is reverseKeys in a fixed pseudo-random order.
func shuffledKeys(n, keyLen int) string {
	pairs := strings.Split(reverseKeys(n, keyLen), ",")
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
	return strings.Join(pairs, ",")
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// TestDecodeJSONLimits: what the decoder refuses, with the limit_exceeded
// reason and a message naming the field and the limit, and what it still
// takes at exactly the limit.
func TestDecodeJSONLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		in      []byte
		wantMsg []string // substrings of the error; nil: accepted
	}{
		{"60k keys in reverse order", withFields(reverseKeys(60000, 8)), []string{`"output_fields"`, "1024"}},
		{"1025 keys", withFields(reverseKeys(1025, 8)), []string{`"output_fields"`, "1024"}},
		{"1024 keys", withFields(reverseKeys(1024, 8)), nil},
		{"1024 keys shuffled", withFields(shuffledKeys(1024, 8)), nil},
		{"1025 entries counting nulls", withFields(reverseKeys(1024, 8) + `,"z":null`), []string{`"output_fields"`, "1024"}},
		{"key of 513 bytes", withFields(`"` + long(513) + `":"v"`), []string{`"output_fields"`, "key", "513", "512"}},
		{"key of 512 bytes", withFields(`"` + long(512) + `":"v"`), nil},
		{"string value of 64 KiB + 1", withFields(`"proc.cmdline":"` + long(64<<10+1) + `"`), []string{`"proc.cmdline"`, "65537", "65536"}},
		{"escaped value of 64 KiB + 1", withFields(`"proc.cmdline":"` + strings.Repeat(`\n`, 64<<10+1) + `"`), []string{`"proc.cmdline"`, "65536"}},
		{"number value of 64 KiB + 1", withFields(`"evt.arg.x":1` + strings.Repeat("0", 64<<10)), []string{`"evt.arg.x"`, "65536"}},
		{"array value of 64 KiB + 1", withFields(`"evt.arg.x":["` + long(64<<10-3) + `"]`), []string{`"evt.arg.x"`, "65536"}},
		{"string value of 64 KiB", withFields(`"proc.cmdline":"` + long(64<<10) + `"`), nil},
		{"nesting 33 in output_fields", withFields(`"evt.arg.x":` + nested(31)), []string{"nest", "32"}},
		{"nesting 32 in output_fields", withFields(`"evt.arg.x":` + nested(30)), nil},
		{"nesting 33 in an unknown key", []byte(limitsHead + `"extra":` + nested(32) + `}`), []string{"nest", "32"}},
		{"nesting 33 in tags", []byte(limitsHead + `"tags":[` + nested(31) + `]}`), []string{"nest", "32"}},
		{"1 MB image repository", withFields(`"container.image.repository":"` + long(1<<20) + `"`), []string{`"container.image.repository"`, "1024"}},
		{"image repository of 1024 bytes", withFields(`"container.image.repository":"` + long(1024) + `"`), nil},
		// Checked as read: Falco never repeats a name.
		{"long image superseded by a short one", withFields(`"container.image.repository":"` + long(5000) + `","container.image.repository":"nginx"`), []string{`"container.image.repository"`, "1024"}},
		{"long cmdline", withFields(`"proc.cmdline":"` + long(10000) + `"`), nil},
		{"long rule", []byte(`{"rule":"` + long(1025) + `","priority":"Info","time":"2026-11-24T12:00:00Z"}`), []string{`"rule"`, "1024"}},
		{"long hostname", []byte(limitsHead + `"hostname":"` + long(1025) + `"}`), []string{`"hostname"`, "1024"}},
	}
	for _, field := range []string{
		"container.id", "container.name", "container.image", "container.image.repository", "container.image.tag",
		"container.image.digest", "k8s.ns.name", "k8smeta.ns.name", "k8s.pod.name", "k8smeta.pod.name",
		"proc.name", "proc.pname", "evt.type",
	} {
		tests = append(tests, struct {
			name    string
			in      []byte
			wantMsg []string
		}{field + " of 1025 bytes", withFields(`"` + field + `":"` + long(1025) + `"`), []string{`"` + field + `"`, "1025", "1024"}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := DecodeJSON(tc.in)
			if tc.wantMsg == nil {
				if err != nil {
					t.Fatalf("DecodeJSON() error = %v, want accepted", TruncateForLog(err.Error()))
				}
				if !isSortedStrictly(ev.Fields) {
					t.Errorf("DecodeJSON() fields not sorted by name")
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != "limit_exceeded" {
				t.Fatalf("DecodeJSON() error = %v, want a DecodeError with reason limit_exceeded", err)
			}
			for _, s := range tc.wantMsg {
				if !strings.Contains(de.Msg, s) {
					t.Errorf("DecodeJSON() error %q does not contain %q", de.Msg, s)
				}
			}
			if len(de.Msg) > 400 {
				t.Errorf("DecodeJSON() error is %d bytes long, want the offending value left out", len(de.Msg))
			}
		})
	}
}

func isSortedStrictly(f Fields) bool {
	for i := 1; i < len(f); i++ {
		if f[i-1].Name >= f[i].Name {
			return false
		}
	}
	return true
}

// TestDecodeJSONMaxKeysReverseOrder: the most keys an event may carry, in
// reverse order, decode to the same sorted fields as in order.
func TestDecodeJSONMaxKeysReverseOrder(t *testing.T) {
	ev, err := DecodeJSON(withFields(reverseKeys(1024, 40)))
	if err != nil {
		t.Fatalf("DecodeJSON() error = %v", err)
	}
	if len(ev.Fields) != 1024 || !isSortedStrictly(ev.Fields) {
		t.Fatalf("DecodeJSON() gave %d fields (sorted: %v), want 1024 sorted", len(ev.Fields), isSortedStrictly(ev.Fields))
	}
	name := strings.Repeat("x", 32) + "00000511"
	if _, ok := ev.Fields.Get(name); !ok {
		t.Errorf("Fields.Get(%q) not found", name)
	}
}

// TestSortFieldsWorkIsNLogN counts comparisons: a sorted input costs one
// pass, a reversed one O(n log n), never the n²/2 of an insertion sort
// (523,776 comparisons for 1024 names; 1.8 billion for 60,000).
func TestSortFieldsWorkIsNLogN(t *testing.T) {
	for _, n := range []int{2, smallSort, smallSort + 1, 1024, 60000} {
		reversed := make([]Field, n)
		for i := range reversed {
			reversed[i] = Field{Name: fmt.Sprintf("k%08d", n-1-i), Value: "v"}
		}
		sorted := make([]Field, n)
		for i := range sorted {
			sorted[i] = reversed[n-1-i]
		}
		shuffled := slices.Clone(sorted)
		rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, tc := range []struct {
			name  string
			in    []Field
			bound int
		}{
			{"sorted", sorted, n - 1},
			{"reversed", reversed, max(smallSort*(smallSort-1)/2, int(4*float64(n)*math.Log2(float64(n))))},
			{"shuffled", shuffled, max(smallSort*(smallSort-1)/2, int(4*float64(n)*math.Log2(float64(n))))},
		} {
			calls := 0
			got := sortFieldsCounting(tc.in, &calls)
			if len(got) != n || !isSortedStrictly(got) {
				t.Errorf("n=%d %s: sortFieldsCounting gave %d fields, sorted %v", n, tc.name, len(got), isSortedStrictly(got))
			}
			if calls > tc.bound {
				t.Errorf("n=%d %s: %d comparisons, want at most %d", n, tc.name, calls, tc.bound)
			}
		}
	}
}

// TestSortFieldsDropsNA: "<NA>" marks a name unset (as null does in JSON),
// so a later value of the name wins over it and an earlier one loses.
func TestSortFieldsDropsNA(t *testing.T) {
	got := SortFields([]Field{{"b", "1"}, {"a", "1"}, {"b", NA}, {"a", NA}, {"a", "2"}, {"c", NA}})
	if want := (Fields{{"a", "2"}}); len(got) != 1 || got[0] != want[0] {
		t.Errorf("SortFields = %v, want %v", got, want)
	}
	if got := SortFields([]Field{{"a", NA}}); got != nil {
		t.Errorf("SortFields of only <NA> = %v, want nil", got)
	}
}

func TestTruncateForLog(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"docker.io/library/nginx:1.27", "docker.io/library/nginx:1.27"},
		{strings.Repeat("a", 512), strings.Repeat("a", 512)},
		{strings.Repeat("a", 513), strings.Repeat("a", 512) + "…(513 bytes)"},
		{strings.Repeat("a", 1<<20), strings.Repeat("a", 512) + "…(1048576 bytes)"},
		// A cut inside a rune backs off to its start.
		{strings.Repeat("a", 511) + "é" + "b", strings.Repeat("a", 511) + "…(514 bytes)"},
	} {
		if got := TruncateForLog(tc.in); got != tc.want {
			t.Errorf("TruncateForLog(%d bytes) = %q (%d bytes), want %q", len(tc.in), TruncateForLog(tc.in), len(got), tc.want)
		}
	}
}

// oneMiB packs events made by next into NDJSON of about 1 MiB.
func oneMiB(next func(i int) []byte) [][]byte {
	var lines [][]byte
	for size, i := 0, 0; size < 1<<20; i++ {
		l := next(i)
		lines = append(lines, l)
		size += len(l) + 1
	}
	return lines
}

func benchLines(b *testing.B, lines [][]byte) {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, err := DecodeJSON(l); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(lines)), "events/MiB")
}

// BenchmarkDecodeOrdinary: 1 MiB of ordinary Falco events. Compare its
// ns/op with BenchmarkDecodeWorstShape's: both decode one 1 MiB body.
func BenchmarkDecodeOrdinary(b *testing.B) {
	one := []byte(strings.ReplaceAll(sample, "\n", ""))
	benchLines(b, oneMiB(func(int) []byte { return one }))
}

// BenchmarkDecodeWorstShape: 1 MiB of events of the costliest shape the
// limits let through: the most fields, in reverse order. "short" keys make
// the most events per MiB ("shuffled": the same in a random order;
// "small": the most fields sorted by insertion, reversed), "long" keys (the longest allowed, sharing all
// but their last bytes) make every comparison as slow as it can be;
// "rejected" is the shape, a 1 MiB event of reversed keys (about
// 75,000), which is refused.
func BenchmarkDecodeWorstShape(b *testing.B) {
	b.Run("short", func(b *testing.B) {
		one := withFields(reverseKeys(1024, 8))
		benchLines(b, oneMiB(func(int) []byte { return one }))
	})
	b.Run("small", func(b *testing.B) { // the most fields sorted by insertion, reversed
		one := withFields(reverseKeys(smallSort, 8))
		benchLines(b, oneMiB(func(int) []byte { return one }))
	})
	b.Run("shuffled", func(b *testing.B) {
		one := withFields(shuffledKeys(1024, 8))
		benchLines(b, oneMiB(func(int) []byte { return one }))
	})
	b.Run("long", func(b *testing.B) {
		one := withFields(reverseKeys(1024, 512))
		benchLines(b, oneMiB(func(int) []byte { return one }))
	})
	b.Run("rejected", func(b *testing.B) {
		one := withFields(reverseKeys(80000, 8)) // 1.1 MB, cut to 1 MiB
		one = one[:bytes.LastIndexByte(one[:1<<20], ',')]
		one = append(one, "}}"...)
		b.SetBytes(int64(len(one)))
		for b.Loop() {
			if _, err := DecodeJSON(one); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
