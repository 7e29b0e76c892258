package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// LabelsVersion is the version of the labels.json format.
const LabelsVersion = 1

// Labels is labels.json: the ground truth of a lab capture.
//
// Every event before TestStart belongs to the learning phase (normal only).
// In the test phase a process is part of an attack when (container id, pid)
// is in an attack Run and the process started within the run's [Start, End]
// window (pids are reused on a long capture: match the time too, see Lookup);
// every other test-phase process is normal. Drift runs are normal processes
// too, labelled so that false alarms on change can be counted apart.
type Labels struct {
	Version     int       `json:"version"`
	Description string    `json:"description,omitempty"`
	LearnStart  time.Time `json:"learn_start"`
	TestStart   time.Time `json:"test_start"`
	End         time.Time `json:"end"`
	Images      []Image   `json:"images"`
	Runs        []Run     `json:"runs"`
}

// LearningPhase is the length of the labelled learning phase.
func (l *Labels) LearningPhase() time.Duration { return l.TestStart.Sub(l.LearnStart) }

// Image is one image of the capture and its containers.
type Image struct {
	Key        string   `json:"key"`
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Digest     string   `json:"digest"`
	Containers []string `json:"containers"`
}

// Run is one labelled run: an attack, or a normal drift (rollout,
// maintenance job, restart storm).
type Run struct {
	Run         string    `json:"run"`
	Scenario    string    `json:"scenario"`
	Kind        string    `json:"kind"` // "attack" or "drift"
	Entry       string    `json:"entry"`
	ContainerID string    `json:"container_id"`
	Image       string    `json:"image"`
	PIDs        []int     `json:"pids"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Events      int       `json:"events"`
	Note        string    `json:"note,omitempty"`
}

// Kinds of Run.
const (
	KindAttack = "attack"
	KindDrift  = "drift"
)

// LoadLabels reads and checks a labels.json.
func LoadLabels(path string) (*Labels, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load labels: %w", err)
	}
	var l Labels
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("load labels %s: %w", path, err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("load labels %s: %w", path, err)
	}
	return &l, nil
}

// Validate checks the fields a consumer relies on.
func (l *Labels) Validate() error {
	var errs []error
	if l.Version != LabelsVersion {
		errs = append(errs, fmt.Errorf("version: %d, want %d", l.Version, LabelsVersion))
	}
	if l.TestStart.IsZero() {
		errs = append(errs, errors.New("test_start: empty"))
	}
	for i, r := range l.Runs {
		if r.Kind != KindAttack && r.Kind != KindDrift {
			errs = append(errs, fmt.Errorf("runs[%d].kind: %q, want attack or drift", i, r.Kind))
		}
		if r.ContainerID == "" {
			errs = append(errs, fmt.Errorf("runs[%d].container_id: empty", i))
		}
		if r.End.Before(r.Start) {
			errs = append(errs, fmt.Errorf("runs[%d].end: before start", i))
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the run that process (containerID, pid) belongs to, given
// the time of one of its events, or nil for a normal process. The window is
// widened by a second on each side: a process's events can come slightly
// after the recorder marked a run's end.
func (l *Labels) Lookup(containerID string, pid int, t time.Time) *Run {
	for i := range l.Runs {
		r := &l.Runs[i]
		if r.ContainerID != containerID || t.Before(r.Start.Add(-time.Second)) || t.After(r.End.Add(time.Second)) {
			continue
		}
		for _, p := range r.PIDs {
			if p == pid {
				return r
			}
		}
	}
	return nil
}

// ImageOf returns the image key of a container of the capture, or "".
func (l *Labels) ImageOf(containerID string) string {
	for _, im := range l.Images {
		for _, c := range im.Containers {
			if c == containerID {
				return im.Key
			}
		}
	}
	return ""
}

// InTest reports whether t is in the test phase.
func (l *Labels) InTest(t time.Time) bool { return !t.Before(l.TestStart) }
