package sinks_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/sinkstest"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(sinks.AlertSchemaJSON()))
	if err != nil {
		t.Fatalf("parse schema: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("alert.schema.json", doc); err != nil {
		t.Fatalf("AddResource() = %v", err)
	}
	s, err := c.Compile("alert.schema.json")
	if err != nil {
		t.Fatalf("Compile() = %v", err)
	}
	return s
}

func TestAlertSchema(t *testing.T) {
	s := compileSchema(t)
	unscored := sinkstest.FalcoAlert(3, "redis:7", "Read sensitive file untrusted")
	unscored.Explain = nil
	unscored.Score = scorer.Score{Band: "none", Verdict: scorer.VerdictUnscored, FalcoPriority: scorer.PriorityWarning}
	end := sinkstest.AnomalyAlert(4, "sha256:abc")
	end.Kind = scorer.KindEnd
	fromGRPC := sinkstest.FalcoAlert(5, "nginx:1.27", "Terminal shell in container")
	fromGRPC.Event.Raw = nil // gRPC events are re-encoded as Falco JSON
	// An event outside any container: the scorer names its subject "host"
	// (scorer/pipeline/enrich.go), with no container, namespace or pod.
	host := sinkstest.FalcoAlert(6, "host", "Write below etc")
	host.Subject = scorer.Subject{Image: "host", ImageSource: "host", ContainerID: "host",
		Process: "vi", PID: 812, Hostname: "node-1"}
	tests := []struct {
		name    string
		payload func() []byte
		valid   bool
		errHas  string
	}{
		{"falco alert", marshal(t, sinkstest.FalcoAlert(1, "nginx:1.27", "Terminal shell in container")), true, ""},
		{"anomaly", marshal(t, sinkstest.AnomalyAlert(2, "nginx:1.27")), true, ""},
		{"unscored without explanation", marshal(t, unscored), true, ""},
		{"sequence end", marshal(t, end), true, ""},
		{"re-encoded falco event", marshal(t, fromGRPC), true, ""},
		{"host event", marshal(t, host), true, ""},
		{"repository key", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "subject", map[string]any{"image": "nginx", "image_source": "repository"}), true, ""},
		{"unknown image source", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "subject", map[string]any{"image": "x", "image_source": "guess"}), false, "image_source"},
		{"wrong schema version", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "schema", "falco-scorer.alert.v0"), false, "schema"},
		{"bad priority", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "priority", "Loud"), false, "priority"},
		{"missing falco", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "falco", nil), false, "falco"},
		{"bad time", edit(t, sinkstest.FalcoAlert(1, "x", "r"), "time", "yesterday"), false, "time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(tt.payload()))
			if err != nil {
				t.Fatalf("parse payload: %v", err)
			}
			err = s.Validate(inst)
			if tt.valid && err != nil {
				t.Errorf("Validate() = %v, want valid", err)
			}
			if !tt.valid && (err == nil || !strings.Contains(err.Error(), tt.errHas)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tt.errHas)
			}
		})
	}
}

func marshal(t *testing.T, a *scorer.Alert) func() []byte {
	return func() []byte {
		b, err := a.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON() = %v", err)
		}
		return b
	}
}

// edit returns the alert's JSON with key set to v (nil deletes it).
func edit(t *testing.T, a *scorer.Alert, key string, v any) func() []byte {
	return func() []byte {
		var m map[string]any
		if err := json.Unmarshal(marshal(t, a)(), &m); err != nil {
			t.Fatal(err)
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}
