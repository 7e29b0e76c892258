package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/store"
)

// TestExportImportGivesIdenticalScores learns baselines on one store,
// exports them, imports them into a fresh store, and scores the same events
// against both: the alerts (scores, thresholds, explanations) must be equal.
func TestExportImportGivesIdenticalScores(t *testing.T) {
	lines, err := decodeCapture(lab.CommittedCapture())
	if err != nil {
		t.Fatal(err)
	}
	split := len(lines) * 7 / 10
	learn, test := lines[:split], lines[split:]
	cfg := demoConfig("", "http://unused", "http://unused")

	openStore := func() *store.DB {
		sc := cfg.Store
		sc.Dir = t.TempDir()
		db, err := store.Open(sc, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	run := func(db *store.DB, lines [][]byte) {
		t.Helper()
		p, err := pipeline.New(cfg.Scorer, pipeline.Deps{Journal: db, Baselines: baselineStore{db}, Sinks: []string{"stdout"}},
			zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		<-p.Ready()
		for i := 0; i < len(lines); i += 200 {
			var evs []scorer.Event
			for _, l := range lines[i:min(i+200, len(lines))] {
				ev, err := scorer.DecodeJSON(l)
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev)
			}
			for {
				err := p.Accept(ctx, "test", evs)
				if err == scorer.ErrOverloaded {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		cancel() // drains every accepted event and flushes the baselines
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	alerts := func(db *store.DB) map[string]string {
		t.Helper()
		es, err := db.Pending("stdout", 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, e := range es {
			m[e.AlertID] = string(e.Payload)
		}
		return m
	}

	a := openStore()
	run(a, learn)
	before := alerts(a)
	var exported bytes.Buffer
	n, err := a.Export(&exported)
	if err != nil || n == 0 {
		t.Fatalf("Export() = %d, %v", n, err)
	}
	b := openStore()
	if _, err := b.Import(bytes.NewReader(exported.Bytes()), store.ImportLimits{}); err != nil {
		t.Fatalf("Import() error = %v", err)
	}

	run(a, test)
	run(b, test)
	got, want := alerts(b), alerts(a)
	for id := range before {
		delete(want, id)
	}
	if len(want) == 0 {
		t.Fatal("the test events raised no alert on the original store; nothing to compare")
	}
	if len(got) != len(want) {
		t.Errorf("imported store raised %d alerts, original %d", len(got), len(want))
	}
	for id, w := range want {
		if g, ok := got[id]; !ok {
			t.Errorf("alert %s missing after import", id)
		} else if g != w {
			t.Errorf("alert %s differs after import:\n got %s\nwant %s", id, g, w)
		}
	}
}
