package main

import (
	"fmt"
	"os"

	"github.com/falco-scorer/falco-scorer/scorer/evaluate/lab"
)

// convert turns a raw recording into capture.ndjson.gz, labels.json and
// summary.json in out.
func convert(raw, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sum, err := lab.ConvertDir(raw, out)
	if err != nil {
		return err
	}
	fmt.Print(sum.Table())
	return nil
}
