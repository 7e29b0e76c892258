package lab

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Output file names in a lab directory.
const (
	CaptureFile = "capture.ndjson.gz"
	LabelsFile  = "labels.json"
	SummaryFile = "summary.json"
)

// Summary is what a conversion produced, per image (summary.json).
type Summary struct {
	Events    int            `json:"events"`
	Images    []ImageSummary `json:"images"`
	Scenarios map[string]int `json:"attack_runs_per_scenario"`
	Drift     map[string]int `json:"drift_runs_per_scenario"`
	// EmptyRuns are attack runs whose processes emitted no observed event.
	EmptyRuns []string `json:"attack_runs_without_events,omitempty"`
	Stats     Stats    `json:"conversion"`
}

// ImageSummary counts one image's events and processes per phase.
type ImageSummary struct {
	Image          string         `json:"image"`
	Containers     int            `json:"containers"`
	LearnEvents    int            `json:"learn_events"`
	TestEvents     int            `json:"test_events"`
	LearnProcesses int            `json:"learn_processes"`
	TestProcesses  int            `json:"test_processes"`
	TestNormal     int            `json:"test_normal_processes"`
	AttackRuns     int            `json:"attack_runs"`
	AttackProcs    int            `json:"attack_processes"`
	ByType         map[string]int `json:"events_by_type"`
}

// Table renders the summary for a terminal or a README.
func (s *Summary) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| image | containers | learn events | learn procs | test events | test procs (normal) | attack runs (procs) |\n|---|---|---|---|---|---|---|\n")
	for _, im := range s.Images {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d (%d) | %d (%d) |\n", im.Image, im.Containers, im.LearnEvents, im.LearnProcesses,
			im.TestEvents, im.TestProcesses, im.TestNormal, im.AttackRuns, im.AttackProcs)
	}
	var sc []string
	for k := range s.Scenarios {
		sc = append(sc, k)
	}
	sort.Strings(sc)
	fmt.Fprintf(&b, "\n| scenario | attack runs |\n|---|---|\n")
	for _, k := range sc {
		fmt.Fprintf(&b, "| %s | %d |\n", k, s.Scenarios[k])
	}
	fmt.Fprintf(&b, "\n%d events; drift runs %v; attack runs without events %v\n", s.Events, s.Drift, s.EmptyRuns)
	return b.String()
}

// ConvertDir converts a recording (manifest.json and its traces in raw) and
// writes capture.ndjson.gz, labels.json and summary.json to out.
func ConvertDir(raw, out string) (*Summary, error) {
	m, err := LoadManifest(filepath.Join(raw, "manifest.json"))
	if err != nil {
		return nil, err
	}
	c := NewConverter(m)
	missing := 0
	for _, t := range m.Traces {
		f, err := os.Open(filepath.Join(raw, t.File))
		if errors.Is(err, fs.ErrNotExist) {
			missing++ // an exec the recorder could not start (it was stopping)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		calls, bad, err := parseTrace(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("convert %s: %w", t.File, err)
		}
		c.Add(t, calls, bad)
	}
	events := c.Finish()
	c.Stats.MissingTraces = missing
	if err := writeCapture(filepath.Join(out, CaptureFile), events); err != nil {
		return nil, err
	}
	labels := c.Labels()
	sum := c.Summary(events)
	for name, v := range map[string]any{LabelsFile: labels, SummaryFile: sum} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(out, name), append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// WriteNDJSON writes events one JSON object per line.
func WriteNDJSON(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeCapture(path string, events []Event) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err := WriteNDJSON(zw, events); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Labels builds labels.json from the runs the processes joined.
func (c *Converter) Labels() *Labels {
	l := &Labels{
		Version: LabelsVersion,
		Description: "falco-scorer lab: real nginx, redis, a Python API and a shell cron worker under strace, converted as the " +
			"shipped Falco rules emit. Events before test_start are the learning phase (normal only). In the test phase a " +
			"process (container_id, pid, started within [start, end]) in an attack run is an attack; every other process is " +
			"normal, drift runs included.",
		LearnStart: c.man.LearnStart, TestStart: c.man.TestStart, End: c.man.End,
	}
	byImage := map[string]*Image{}
	for _, ct := range c.man.Containers {
		im := byImage[ct.Image()]
		if im == nil {
			im = &Image{Key: ct.Image(), Repository: ct.Repository, Tag: ct.Tag, Digest: ct.Digest}
			byImage[ct.Image()] = im
		}
		im.Containers = append(im.Containers, ct.ID)
	}
	for _, im := range byImage {
		l.Images = append(l.Images, *im)
	}
	sort.Slice(l.Images, func(a, b int) bool { return l.Images[a].Key < l.Images[b].Key })
	for _, r := range c.runs {
		run := Run{Run: r.spec.Run, Scenario: r.spec.Scenario, Kind: r.spec.Kind, Entry: r.spec.Entry, Start: r.spec.Start, End: r.spec.End, Note: r.spec.Note}
		if r.cont != nil {
			run.ContainerID, run.Image = r.cont.ID, r.cont.Image()
		}
		for _, p := range r.procs {
			run.Events += p.events
			if p.events == 0 {
				continue
			}
			if !slices.Contains(run.PIDs, p.pid) {
				run.PIDs = append(run.PIDs, p.pid)
			}
			if t := time.UnixMicro(p.first).UTC(); t.Before(run.Start) {
				run.Start = t
			}
			if t := time.UnixMicro(p.last).UTC(); t.After(run.End) {
				run.End = t
			}
		}
		sort.Ints(run.PIDs)
		if run.ContainerID == "" {
			continue // the run never started (recorder error, logged there)
		}
		l.Runs = append(l.Runs, run)
	}
	return l
}

// Summary counts events and processes per image and phase.
func (c *Converter) Summary(events []Event) *Summary {
	s := &Summary{Events: len(events), Scenarios: map[string]int{}, Drift: map[string]int{}, Stats: c.Stats}
	ims := map[string]*ImageSummary{}
	conts := map[string]map[string]bool{}
	get := func(ct *ContainerSpec) *ImageSummary {
		k := ct.Image()
		if ims[k] == nil {
			ims[k] = &ImageSummary{Image: k, ByType: map[string]int{}}
			conts[k] = map[string]bool{}
		}
		conts[k][ct.ID] = true
		return ims[k]
	}
	for _, e := range c.events {
		im := get(e.proc.container)
		if e.us < c.testFrom {
			im.LearnEvents++
		} else {
			im.TestEvents++
		}
		im.ByType[e.fields["evt.type"].(string)]++
	}
	for _, p := range c.procs {
		if p.events == 0 || p.container == nil {
			continue
		}
		im := get(p.container)
		if p.events > p.eventsTest {
			im.LearnProcesses++
		}
		if p.eventsTest > 0 {
			im.TestProcesses++
			if p.run == nil || p.run.spec.Kind != KindAttack {
				im.TestNormal++
			} else {
				im.AttackProcs++
			}
		}
	}
	for _, r := range c.runs {
		if r.cont == nil {
			continue
		}
		if r.spec.Kind == KindDrift {
			s.Drift[r.spec.Scenario]++
			continue
		}
		s.Scenarios[r.spec.Scenario]++
		get(r.cont).AttackRuns++
		n := 0
		for _, p := range r.procs {
			n += p.events
		}
		if n == 0 {
			s.EmptyRuns = append(s.EmptyRuns, r.spec.Run)
		}
	}
	for k, im := range ims {
		im.Containers = len(conts[k])
		s.Images = append(s.Images, *im)
	}
	sort.Slice(s.Images, func(a, b int) bool { return s.Images[a].Image < s.Images[b].Image })
	return s
}
