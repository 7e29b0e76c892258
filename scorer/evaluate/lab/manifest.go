package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Manifest is what the recorder (cmd/falco-lab record) writes beside its
// strace files: which container each trace belongs to, the phases, and the
// labelled runs (attacks and normal drift) by the pid that roots them.
type Manifest struct {
	Version int `json:"version"`
	// Hostname is the Falco hostname of every event.
	Hostname   string          `json:"hostname"`
	LearnStart time.Time       `json:"learn_start"`
	TestStart  time.Time       `json:"test_start"`
	End        time.Time       `json:"end"`
	Containers []ContainerSpec `json:"containers"`
	Traces     []TraceSpec     `json:"traces"`
	Runs       []RunSpec       `json:"runs"`
	// Users maps uid to user name as the containers' /etc/passwd would
	// (user.name).
	Users map[int]string `json:"users"`
	// RootfsPrefix is the host directory that stands for the containers'
	// root filesystem in persistence and account-manipulation attacks;
	// paths under it are rewritten to "/" + rest (see README).
	RootfsPrefix string `json:"rootfs_prefix,omitempty"`
}

// ContainerSpec is one synthetic container: a traced service tree and the
// execs into it.
type ContainerSpec struct {
	Key        string `json:"key"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	Repository string `json:"image_repository"`
	Tag        string `json:"image_tag"`
	Digest     string `json:"image_digest"`
	Namespace  string `json:"k8s_ns"`
	Pod        string `json:"k8s_pod"`
}

// Image is the image key the scorer derives: digest when known.
func (c ContainerSpec) Image() string {
	if c.Digest != "" {
		return c.Repository + "@" + c.Digest
	}
	return c.Repository + ":" + c.Tag
}

// TraceSpec is one strace output file and the container its processes run in.
type TraceSpec struct {
	File      string `json:"file"`
	Container string `json:"container"`
	// Exec marks an "exec into the container" trace: its root process's
	// parent is the container runtime, not a process of the service.
	Exec bool `json:"exec,omitempty"`
}

// RunSpec is one labelled run as the recorder knows it: a root pid (from the
// debug endpoint's answer) or a whole trace file, in a time window.
type RunSpec struct {
	Run      string    `json:"run"`
	Scenario string    `json:"scenario"`
	Kind     string    `json:"kind"` // attack or drift
	Entry    string    `json:"entry"`
	RootPID  int       `json:"root_pid,omitempty"`
	Trace    string    `json:"trace,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Note     string    `json:"note,omitempty"`
}

// LoadManifest reads a manifest.json.
func LoadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("load manifest %s: %w", path, err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("load manifest %s: version: %d, want 1", path, m.Version)
	}
	return &m, nil
}
