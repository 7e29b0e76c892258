package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds the rules file; real ones are a few kilobytes.
const maxFileSize = 4 << 20

// Parse decodes a rules file strictly over DefaultConfig (unknown keys are
// errors; sinks given are added to or override the built-in ones), validates
// it and returns its Engine. Every error is reported as "filename:line:
// reason", several joined with newlines. An empty file yields the defaults.
func Parse(b []byte, filename string) (*Engine, error) {
	cfg, err := parseConfig(b, filename)
	if err != nil {
		return nil, err
	}
	return newEngine(cfg), nil
}

// Load reads and parses the rules file at path.
func Load(path string) (*Engine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", path, err)
	}
	return Parse(b, path)
}

// Default returns an Engine with the built-in configuration (DefaultConfig),
// for running without a rules file.
func Default() *Engine { return newEngine(DefaultConfig()) }

// ParseConfig decodes and validates a rules file like Parse, returning the
// Config instead of an Engine (for `config check` style commands and tests).
func ParseConfig(b []byte, filename string) (Config, error) { return parseConfig(b, filename) }

func parseConfig(b []byte, filename string) (Config, error) {
	if filename == "" {
		filename = "rules"
	}
	if len(b) > maxFileSize {
		return Config{}, fmt.Errorf("%s: file larger than %d bytes", filename, maxFileSize)
	}
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, yamlError(filename, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, fmt.Errorf("%s:%d: more than one YAML document", filename, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return Config{}, yamlError(filename, err)
	}
	if verrs := cfg.validate(); len(verrs) > 0 {
		var root yaml.Node
		_ = yaml.Unmarshal(b, &root) // decoded once already; on error lines fall back to 0
		out := make([]error, len(verrs))
		for i, e := range verrs {
			out[i] = fmt.Errorf("%s:%d: %s", filename, lineOf(&root, e.path), oneLine(e.Error()))
		}
		return Config{}, errors.Join(out...)
	}
	return cfg, nil
}

// yamlError rewrites yaml.v3's errors as "file:line: reason".
func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			out = append(out, errors.New(lineMessage(filename, msg)))
		}
		return errors.Join(out...)
	}
	return errors.New(lineMessage(filename, err.Error()))
}

func lineMessage(filename, msg string) string {
	// One problem per line: values quoted in yaml.v3 messages may hold
	// newlines.
	msg = oneLine(strings.TrimPrefix(msg, "yaml: "))
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return filename + ": " + msg
	}
	num, reason, ok := strings.Cut(rest, ": ")
	if !ok || num == "" || strings.Trim(num, "0123456789") != "" {
		return filename + ": " + msg
	}
	// "field foo not found in type rules.Match" -> unknown key "foo"
	if f, ok := strings.CutPrefix(reason, "field "); ok {
		if i := strings.LastIndex(f, " not found in type "); i > 0 {
			reason = fmt.Sprintf("unknown key %q", f[:i])
		}
	}
	return filename + ":" + num + ": " + reason
}

// lineOf finds the line of the node at path (string keys, int indexes), or
// of its deepest existing ancestor when the path ends early (a missing key).
func lineOf(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return n.Line
		}
		n = n.Content[0]
	}
	line := n.Line
	for _, el := range path {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch v := el.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == v {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || v < 0 || v >= len(n.Content) {
				return line
			}
			n = n.Content[v]
			line = n.Line
		}
	}
	return line
}

// oneLine escapes line breaks so that each reported problem is one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
