package source

import (
	"bytes"
	"testing"
	"time"

	"github.com/falcosecurity/client-go/pkg/api/outputs"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// FuzzGRPCWire: the protowire decoder agrees with client-go's generated
// code on every message the generated code accepts, down to Raw's bytes.
func FuzzGRPCWire(f *testing.F) {
	for _, r := range []*outputs.Response{sampleResponse(), numberedResponse(7), {}} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var res outputs.Response
		if err := proto.Unmarshal(data, &res); err != nil {
			return
		}
		var w wireResponse
		if err := w.decode(data); err != nil {
			t.Fatalf("wire decode of %x = %v, but proto.Unmarshal accepts it", data, err)
		}
		want, werr := EventFromResponse(&res)
		got, gerr := w.event()
		if werr == nil && gerr != nil && decodeReason(gerr) == scorer.ReasonLimitExceeded && len(data) >= 2*(scorer.MaxFields+1) {
			return // the wire counts repeated entries, the generated map does not (an entry is 2 bytes at least)
		}
		if (werr == nil) != (gerr == nil) || (werr != nil && decodeReason(werr) != decodeReason(gerr)) {
			t.Fatalf("errors differ for %x: generated %v, wire %v", data, werr, gerr)
		}
		if werr != nil {
			return
		}
		if d := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() })); d != "" {
			t.Fatalf("events differ for %x (-generated +wire):\n%s", data, d)
		}
	})
}

// FuzzFalcoJSON: appendFalcoJSON writes exactly what Event.EncodeJSON writes.
func FuzzFalcoJSON(f *testing.F) {
	f.Add("node-1", "out <b> & \u2028 \x01\"\\", "rule", "syscall", "T1059", "proc.pid", "4242", int8(5), int64(1795953600123456789))
	f.Add("", "", "", "", "", "", "", int8(0), int64(0))
	f.Add("\xff", "a\tb\nc\rd\be\f", "r\x7f", "", "t", "k\xc3", "<NA>", int8(7), int64(-1))
	f.Fuzz(func(t *testing.T, host, output, rule, source, tag, key, val string, prio int8, nanos int64) {
		ev := scorer.Event{
			Time: time.Unix(0, nanos).UTC(), Priority: scorer.Priority(uint8(prio) % 8),
			Rule: rule, Output: output, Source: source, Hostname: host,
		}
		if tag != "" {
			ev.Tags = []string{tag, tag + "2"}
		}
		if key != "" {
			ev.Fields = scorer.FieldsOf(map[string]string{key: val, "z" + key: val + val, "a": key})
		}
		want, err := ev.EncodeJSON()
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFalcoJSON(nil, &ev); !bytes.Equal(got, want) {
			t.Fatalf("appendFalcoJSON = %s\nEncodeJSON      = %s", got, want)
		}
	})
}

func TestWireMatchesGenerated(t *testing.T) {
	b, err := proto.Marshal(sampleResponse())
	if err != nil {
		t.Fatal(err)
	}
	var w wireResponse
	if err := w.decode(b); err != nil {
		t.Fatalf("decode() = %v", err)
	}
	got, err := w.event()
	if err != nil {
		t.Fatal(err)
	}
	want, err := EventFromResponse(sampleResponse())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("wire event differs from generated (-generated +wire):\n%s", d)
	}
	enc, _ := want.EncodeJSON()
	if !bytes.Equal(want.Raw, enc) {
		t.Errorf("Raw = %s, want EncodeJSON's %s", want.Raw, enc)
	}
}
