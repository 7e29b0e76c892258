package lab

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// The committed lab recording (testdata/, see README.md): what `make demo`
// replays and what eval's tests measure.
var (
	//go:embed testdata/capture.ndjson.gz
	committedCapture []byte
	//go:embed testdata/labels.json
	committedLabels []byte
)

// CommittedCapture returns the committed capture: gzip NDJSON Falco events,
// the learning phase then the test phase. The caller must not modify it.
func CommittedCapture() []byte { return committedCapture }

// CommittedLabels returns the committed capture's labels.
func CommittedLabels() (*Labels, error) {
	var l Labels
	if err := json.Unmarshal(committedLabels, &l); err != nil {
		return nil, fmt.Errorf("committed labels: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("committed labels: %w", err)
	}
	return &l, nil
}
