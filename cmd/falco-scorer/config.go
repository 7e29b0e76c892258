package main

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer/pipeline"
	"github.com/falco-scorer/falco-scorer/scorer/secret"
	"github.com/falco-scorer/falco-scorer/scorer/source"
	"github.com/falco-scorer/falco-scorer/sinks"
	"github.com/falco-scorer/falco-scorer/sinks/kafka"
	"github.com/falco-scorer/falco-scorer/sinks/slack"
	"github.com/falco-scorer/falco-scorer/sinks/webhook"
	"github.com/falco-scorer/falco-scorer/store"
)

// Config is the whole service configuration: one YAML file decoded strictly
// over DefaultConfig. Each section is owned by the package that uses it;
// this file only assembles them and prefixes their field names in errors.
type Config struct {
	Log       LogConfig       `yaml:"log"`
	DataDir   string          `yaml:"data_dir"` // shorthand for store.dir
	Inputs    source.Config   `yaml:"inputs"`
	Scorer    pipeline.Config `yaml:"scorer"`
	RulesFile string          `yaml:"rules_file"` // priority/routing/suppression rules; built-in defaults when empty
	Store     store.Config    `yaml:"store"`
	Delivery  sinks.Config    `yaml:"delivery"` // retry, batching and dead-letter policy shared by every sink
	Sinks     SinksConfig     `yaml:"sinks"`
	Admin     AdminConfig     `yaml:"admin"`
	// ShutdownTimeout bounds the ordered shutdown after SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (the garbage
	// collector works harder near it, instead of letting the heap grow to
	// twice the live data). 0 (the default) means 80 % of the container's
	// memory limit when the process runs in a cgroup with one, and no limit
	// otherwise; GOMEMLIMIT, when set, wins over both. Under sustained
	// overload Badger's table builders and memtables are most of the live
	// heap; a limit close to that working set costs CPU (a 512 MiB limit
	// halved replay throughput in the benchmark).
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
}

// LogConfig selects the root logger's format and level.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json or console
}

// SinksConfig enables and configures each destination.
type SinksConfig struct {
	Stdout  StdoutConfig  `yaml:"stdout"`
	Kafka   KafkaConfig   `yaml:"kafka"`
	Slack   SlackConfig   `yaml:"slack"`
	Webhook WebhookConfig `yaml:"webhook"`
}

// StdoutConfig enables the JSON-lines sink on standard output.
type StdoutConfig struct {
	Enabled bool `yaml:"enabled"`
}

// KafkaConfig enables the Kafka sink.
type KafkaConfig struct {
	Enabled      bool `yaml:"enabled"`
	kafka.Config `yaml:",inline"`
}

// SlackConfig enables the Slack sink.
type SlackConfig struct {
	Enabled      bool `yaml:"enabled"`
	slack.Config `yaml:",inline"`
}

// WebhookConfig enables the Falco-format webhook sink.
type WebhookConfig struct {
	Enabled        bool `yaml:"enabled"`
	webhook.Config `yaml:",inline"`
}

// AdminConfig places and protects the operations endpoints: /healthz,
// /readyz, /metrics and the admin API (/api/v1/...). They are served on
// Listen when it is set, else on the HTTP input's listener. The admin API
// needs Token, except on a loopback Listen; on the ingest listener it is
// not served without Token (the ingest token is Falco's, not an
// operator's). There /metrics needs a token too once either is set. See
// mountOps for the whole policy.
type AdminConfig struct {
	// Listen is a separate plain-HTTP address for the operations endpoints,
	// so that ingest can stay on loopback (Falco in the same pod) while
	// probes and Prometheus reach these from outside the pod.
	Listen    string        `yaml:"listen"`
	Token     secret.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	TokenEnv  string        `yaml:"token_env"`
	// AllowedHosts are extra host names (no port) /metrics and the admin
	// API answer to, besides IP addresses, "localhost" and the listen host:
	// a request under any other name is refused (403), since that is what
	// a DNS-rebinding web page sends. Not checked for token-protected
	// endpoints on a non-loopback listener.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// TokenRef is where the admin token comes from (token, token_file,
// token_env).
func (c AdminConfig) TokenRef() secret.Ref {
	return secret.Ref{Key: "token", Inline: c.Token, File: c.TokenFile, Env: c.TokenEnv}
}

// DefaultConfig is the configuration without a file: HTTP ingest on
// 127.0.0.1:2801, data in ./data, alerts on stdout.
func DefaultConfig() Config {
	c := Config{
		Log:             LogConfig{Level: "info", Format: "json"},
		DataDir:         "",
		Inputs:          source.DefaultConfig(),
		Scorer:          pipeline.DefaultConfig(),
		Store:           store.DefaultConfig(),
		Delivery:        sinks.DefaultConfig(),
		ShutdownTimeout: 20 * time.Second,
		MemoryLimitMiB:  0,
	}
	c.Sinks.Stdout.Enabled = true
	c.Sinks.Kafka.Config = kafka.DefaultConfig()
	c.Sinks.Slack.Config = slack.DefaultConfig()
	c.Sinks.Webhook.Config = webhook.DefaultConfig()
	return c
}

// LoadConfig reads path (or nothing when path is empty) over the defaults
// and validates the result.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := decodeConfig(b, &cfg); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
	}
	if cfg.DataDir != "" {
		cfg.Store.Dir = cfg.DataDir
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
		return cfg, err
	}
	return cfg, nil
}

// decodeConfig decodes YAML strictly: an unknown key or a value of the
// wrong kind is an error that names the key's YAML path and line.
func decodeConfig(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	if e := explainDecodeError(b, err); e != nil {
		return e
	}
	return fmt.Errorf("decode: %w", err)
}

// explainDecodeError restates yaml.v3's decoding errors in the file's own
// terms. yaml.v3 names the Go type it decoded into ("cannot unmarshal !!seq
// into main.KafkaConfig", "field brokerz not found in type kafka.Config")
// and only the line; an operator knows the YAML path, not our types. The
// file is parsed again into nodes, each node is paired with the type it
// decodes into, and each message is matched to its node by line, tag and
// value (several nodes share a line in flow style). It returns nil when
// err is not a decoding error (a syntax error already reads well).
func explainDecodeError(b []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return nil
	}
	idx := &nodeIndex{used: map[*yaml.Node]bool{}}
	idx.walk(&root, "", reflect.TypeFor[Config]())
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, msg := range te.Errors {
			errs = append(errs, idx.explain(msg))
		}
		return errors.Join(errs...)
	}
	// A value refused by its own UnmarshalText (a priority): yaml.v3 passes
	// the error on without a position, so find the value it refused.
	return idx.textError()
}

// configNode is one node of the config file with its YAML path and the Go
// type it decodes into (nil where the schema has no such key).
type configNode struct {
	path   string
	node   *yaml.Node
	typ    reflect.Type
	key    bool         // node is a mapping key (path names its value)
	parent reflect.Type // for a key: the type of the mapping holding it
}

type nodeIndex struct {
	nodes []configNode
	used  map[*yaml.Node]bool // nodes already matched to a message
}

func (x *nodeIndex) walk(n *yaml.Node, path string, t reflect.Type) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.walk(c, path, t)
		}
		return
	case yaml.AliasNode:
		// yaml.v3 reports errors inside an alias at the anchor's line, which
		// the anchored node itself covers; following aliases could loop.
		return
	}
	x.nodes = append(x.nodes, configNode{path: path, node: n, typ: t})
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			var ct reflect.Type
			if t != nil {
				switch t.Kind() {
				case reflect.Struct:
					for _, f := range yamlFields(t) {
						if f.key == k.Value {
							ct = f.typ
						}
					}
				case reflect.Map:
					ct = t.Elem()
				}
			}
			x.nodes = append(x.nodes, configNode{path: p, node: k, key: true, parent: t})
			x.walk(v, p, ct)
		}
	case yaml.SequenceNode:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i, c := range n.Content {
			x.walk(c, fmt.Sprintf("%s[%d]", path, i), et)
		}
	}
}

var (
	errLine      = regexp.MustCompile("^line ([0-9]+): (.*)$")
	errUnmarshal = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (.*)$")
	errUnknown   = regexp.MustCompile(`^field (\S+) not found in type .*$`)
	errDuplicate = regexp.MustCompile(`^mapping key "(.*)" already defined at line ([0-9]+)$`)
	errSetTwice  = regexp.MustCompile(`^field (\S+) already set in type .*$`)
)

// explain restates one of yaml.v3's TypeError messages.
func (x *nodeIndex) explain(msg string) error {
	m := errLine.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(stripGoType(msg))
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	at := func(n configNode) string {
		if n.path == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("%s: line %d", n.path, line)
	}
	if u := errUnmarshal.FindStringSubmatch(rest); u != nil {
		// The Go type in the message tells nested nodes on one line apart
		// (a block mapping and its first value both start on it).
		if n, ok := x.find(line, false, func(n configNode) bool {
			return n.node.ShortTag() == u[1] && (u[2] == "" || abbreviate(n.node.Value) == u[2]) &&
				n.typ != nil && n.typ.String() == u[3]
		}); ok {
			return fmt.Errorf("%s: got %s, want %s", at(n), describeNode(n.node), describeType(n.typ))
		}
	}
	if u := errUnknown.FindStringSubmatch(rest); u != nil {
		if n, ok := x.find(line, true, func(n configNode) bool { return n.node.Value == u[1] }); ok {
			var known []string
			if n.parent != nil && n.parent.Kind() == reflect.Struct {
				for _, f := range yamlFields(n.parent) {
					known = append(known, f.key)
				}
			}
			return fmt.Errorf("%s: unknown key (known here: %s)", at(n), strings.Join(known, ", "))
		}
	}
	if u := errDuplicate.FindStringSubmatch(rest); u != nil {
		if n, ok := x.find(line, true, func(n configNode) bool { return n.node.Value == u[1] }); ok {
			return fmt.Errorf("%s: key already defined at line %s", at(n), u[2])
		}
	}
	if u := errSetTwice.FindStringSubmatch(rest); u != nil {
		if n, ok := x.find(line, true, func(n configNode) bool { return n.node.Value == u[1] }); ok {
			return fmt.Errorf("%s: key set twice", at(n))
		}
	}
	return fmt.Errorf("line %d: %s", line, stripGoType(rest))
}

// find returns the first node not yet matched on line that is a key (or a
// value) and satisfies ok, and marks it matched: two identical messages on
// one line are two nodes.
func (x *nodeIndex) find(line int, key bool, ok func(configNode) bool) (configNode, bool) {
	for _, n := range x.nodes {
		if n.node.Line == line && n.key == key && !x.used[n.node] && ok(n) {
			x.used[n.node] = true
			return n, true
		}
	}
	return configNode{}, false
}

// textError finds the scalar that its type's UnmarshalText refuses.
func (x *nodeIndex) textError() error {
	for _, n := range x.nodes {
		if n.key || n.typ == nil || n.node.Kind != yaml.ScalarNode || n.node.ShortTag() == "!!null" {
			continue
		}
		v, ok := reflect.New(n.typ).Interface().(encoding.TextUnmarshaler)
		if !ok {
			continue
		}
		if err := v.UnmarshalText([]byte(n.node.Value)); err != nil {
			return fmt.Errorf("%s: line %d: %w", n.path, n.node.Line, err)
		}
	}
	return nil
}

// stripGoType drops yaml.v3's " into <Go type>" from a message it could
// not be matched to a node.
func stripGoType(msg string) string {
	if i := strings.LastIndex(msg, " into "); i >= 0 {
		return msg[:i]
	}
	if i := strings.LastIndex(msg, " in type "); i >= 0 {
		return msg[:i]
	}
	return msg
}

// abbreviate shortens a value as yaml.v3 does in its messages, which also
// keeps a misplaced secret from being echoed whole.
func abbreviate(v string) string {
	if len(v) > 10 {
		return v[:7] + "..."
	}
	return v
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	switch n.ShortTag() {
	case "!!null":
		return "an empty value"
	case "!!str":
		return strconv.Quote(abbreviate(n.Value))
	case "!!binary":
		return "binary data"
	}
	return abbreviate(n.Value)
}

// describeType names what a key takes, in YAML's words.
func describeType(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration (such as 30s or 5m)"
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "another value"
}

type yamlField struct {
	key string
	typ reflect.Type
}

// yamlFields lists a struct's YAML keys as yaml.v3 sees them: the tag's
// name or the lowercased field name, ",inline" structs flattened, "-" and
// unexported fields left out.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			if ft := f.Type; ft.Kind() == reflect.Struct {
				out = append(out, yamlFields(ft)...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{name, f.Type})
	}
	return out
}

// Validate checks every section and names failing fields by their full path.
func (c Config) Validate() error {
	var errs []error
	add := func(prefix string, err error) {
		if err == nil {
			return
		}
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				errs = append(errs, fmt.Errorf("%s.%w", prefix, e))
			}
			return
		}
		errs = append(errs, fmt.Errorf("%s.%w", prefix, err))
	}
	if _, err := newLogger(io.Discard, c.Log.Format, c.Log.Level); err != nil {
		errs = append(errs, err)
	}
	add("inputs", c.Inputs.Validate())
	add("scorer", c.Scorer.Validate())
	add("store", c.Store.Validate())
	add("delivery", c.Delivery.Validate())
	for _, k := range c.sinkKinds() {
		if k.enabled && k.validate != nil {
			add("sinks."+k.name, k.validate())
		}
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %w", err))
		}
	}
	for i, h := range c.Admin.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ \t*@") {
			errs = append(errs, fmt.Errorf("admin.allowed_hosts[%d]: %q is not a host name (no port, scheme or wildcard; IP addresses are always accepted)", i, h))
		}
	}
	if c.MemoryLimitMiB < 0 {
		errs = append(errs, errors.New("memory_limit_mib: must not be negative"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be positive"))
	}
	if c.RulesFile != "" {
		if _, err := os.Stat(c.RulesFile); err != nil {
			errs = append(errs, fmt.Errorf("rules_file: %w", err))
		}
	}
	errs = append(errs, c.secretErrors()...)
	return errors.Join(errs...)
}

// secretErrors resolves every secret the service would read at start, as
// serve does (secret.Ref.Resolve: environment, then file, then inline), so
// that `config check`, which runs this same Validate, refuses a *_file that
// serve could not read. Values are read and dropped, never printed.
func (c Config) secretErrors() []error {
	refs := []secret.Ref{c.Inputs.HTTP.TokenRef().Under("inputs.http."), c.Admin.TokenRef().Under("admin.")}
	for _, k := range c.sinkKinds() {
		if k.enabled && k.secrets != nil {
			for _, r := range k.secrets() {
				refs = append(refs, r.Under("sinks."+k.name+"."))
			}
		}
	}
	var errs []error
	for _, r := range refs {
		if _, err := r.Resolve(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
