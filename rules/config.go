package rules

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// Anomaly bands, from a score's ratio to its image's threshold. They are the
// values of scorer.Score.Band.
const (
	BandNone     = "none"
	BandLow      = "low"
	BandMedium   = "medium"
	BandHigh     = "high"
	BandCritical = "critical"
)

func validBand(b string) bool {
	switch b {
	case BandNone, BandLow, BandMedium, BandHigh, BandCritical:
		return true
	}
	return false
}

func validKind(k string) bool {
	return k == scorer.KindFalco || k == scorer.KindAnomaly || k == scorer.KindEnd
}

// Config is the scorer's priority, routing and suppression configuration: the
// file named by the service's rules_file. Every key is optional; unknown keys
// are errors.
type Config struct {
	// Bands are the score/threshold ratios at which each band starts.
	Bands Bands `yaml:"bands"`
	// AnomalyPriority is the priority of an anomaly or sequence_end alert in
	// each band when its baseline is mature (see Maturity).
	AnomalyPriority BandLevels `yaml:"anomaly_priority"`
	// YoungAnomalyPriority is the priority of an anomaly or sequence_end
	// alert in each band when its baseline is young: just graduated, its
	// threshold placed on a short stretch of behaviour and its false-alarm
	// rate not yet shown, the same score is weaker evidence.
	YoungAnomalyPriority BandLevels `yaml:"young_anomaly_priority"`
	// Maturity says when a baseline counts as mature.
	Maturity MaturityConfig `yaml:"maturity"`
	// FalcoRaise is how many levels a Falco alert's own priority is raised
	// when its container is currently in each band. Never negative: the band
	// never lowers Falco's priority.
	FalcoRaise BandRaise `yaml:"falco_raise"`
	// Sinks lists the sinks alerts can be routed to, with each one's minimum
	// priority. Keys are sink names as the service knows them.
	Sinks map[string]SinkConfig `yaml:"sinks"`
	// DefaultSinks are the sinks of an alert no rule routes; empty means all
	// of Sinks.
	DefaultSinks []string `yaml:"default_sinks"`
	// Dedup suppresses repeats of the same image, rule and kind.
	Dedup DedupConfig `yaml:"dedup"`
	// Rules are evaluated in order; see Rule.
	Rules []Rule `yaml:"rules"`
}

// Bands holds the ratio (score / threshold) at which each band starts. They
// must be positive and strictly increasing.
type Bands struct {
	Low      float64 `yaml:"low"`
	Medium   float64 `yaml:"medium"`
	High     float64 `yaml:"high"`
	Critical float64 `yaml:"critical"`
}

// BandLevels maps each band to a priority.
type BandLevels struct {
	None     Level `yaml:"none"`
	Low      Level `yaml:"low"`
	Medium   Level `yaml:"medium"`
	High     Level `yaml:"high"`
	Critical Level `yaml:"critical"`
}

// MaturityConfig says when the baseline behind an anomaly is mature: it is
// monitoring, holds at least MinEvents learned events, and graduated at
// least MinMonitoring ago. Any other baseline is young.
type MaturityConfig struct {
	// MinEvents is the fewest learned events of a mature baseline (the
	// baseline's events within its rolling horizon).
	MinEvents uint64 `yaml:"min_events"`
	// MinMonitoring is how long a mature baseline has been monitoring since
	// it graduated; 0 does not look at time. Measured on the service's
	// clock, so a replay of old events graduates and matures at replay speed
	// only by events.
	MinMonitoring time.Duration `yaml:"min_monitoring"`
}

// BandRaise maps each band to a number of priority levels.
type BandRaise struct {
	None     int `yaml:"none"`
	Low      int `yaml:"low"`
	Medium   int `yaml:"medium"`
	High     int `yaml:"high"`
	Critical int `yaml:"critical"`
}

// SinkConfig is the routing view of one sink.
type SinkConfig struct {
	// MinPriority is the least severe priority the sink receives.
	MinPriority Level `yaml:"min_priority"`
}

// DedupConfig configures duplicate suppression: an alert with the same image,
// Falco rule and kind as one delivered less than Window ago is suppressed as
// a duplicate. The window is fixed from the delivered alert, so a steady
// stream still yields one alert per window, never silence.
type DedupConfig struct {
	// Window is the dedup window; 0 disables dedup.
	Window time.Duration `yaml:"window"`
	// Kinds are the alert kinds deduplicated (falco, anomaly, sequence_end).
	Kinds []string `yaml:"kinds"`
	// MaxKeys bounds the remembered (image, rule, kind) keys; the least
	// recently seen are evicted first (and counted).
	MaxKeys int `yaml:"max_keys"`
}

// Rule matches alerts and changes their priority or routing, or suppresses
// them. Rules are evaluated in order; the first matching rule applies and
// ends the evaluation unless it sets Continue. A rule without actions just
// ends the evaluation, which exempts its alerts from later rules. A
// suppression whose Until has passed is ignored (and counted), as if the rule
// did not match.
type Rule struct {
	// Name identifies the rule in decisions and errors; required, unique.
	Name string `yaml:"name"`
	// Match selects alerts; an empty Match selects every alert.
	Match Match `yaml:"match"`
	// SetPriority replaces the priority (it may lower a Falco alert's own).
	SetPriority *Level `yaml:"set_priority"`
	// Raise moves the priority by this many levels (negative lowers), after
	// SetPriority.
	Raise int `yaml:"raise"`
	// Sinks replaces the alert's destination sinks; each must be in
	// Config.Sinks. Sinks' minimum priorities still apply.
	Sinks []string `yaml:"sinks"`
	// Suppress drops matching alerts until a time, for a stated reason. It
	// cannot be combined with the other actions.
	Suppress *Suppress `yaml:"suppress"`
	// Continue lets later rules apply too.
	Continue bool `yaml:"continue"`
}

// Match selects alerts. Every field given must match (and); within a field
// any pattern may match (or). Patterns are exact strings or globs with '*'
// (any run of characters, '/' included) and '?' (one character).
type Match struct {
	Rules      Patterns `yaml:"rules"`      // Falco rule name (alert.Event.Rule)
	Tags       Patterns `yaml:"tags"`       // any of the event's tags
	Namespaces Patterns `yaml:"namespaces"` // Kubernetes namespace
	Images     Patterns `yaml:"images"`     // image key (repo@digest or repo:tag), its repository, or its repo:tag
	Bands      []string `yaml:"bands"`      // anomaly band
	Kinds      []string `yaml:"kinds"`      // falco, anomaly, sequence_end
	// MinPriority matches alerts at least this severe, judged on the
	// priority before any rule applies.
	MinPriority *Level `yaml:"min_priority"`
}

// Suppress is a time-limited suppression.
type Suppress struct {
	Until  Time   `yaml:"until"`  // RFC 3339; required
	Reason string `yaml:"reason"` // required
}

// DefaultConfig returns the built-in routing: bands at 1.0/1.5/2.5/4.0 times
// the threshold, anomaly priorities Warning to Critical on a mature baseline
// (5,000 learned events, a little over three times what graduation needs at
// the scorer's defaults) and one level lower, Notice to Critical, on a young
// one (so only a mature baseline's anomalies reach Slack from band low), Falco alerts raised
// by one level in band medium, two in high and three in critical, the four
// built-in sinks with their usual floors, and a one-minute dedup of anomaly
// alerts (Falco's own alerts are not deduplicated by default).
func DefaultConfig() Config {
	return Config{
		Bands: Bands{Low: 1.0, Medium: 1.5, High: 2.5, Critical: 4.0},
		AnomalyPriority: BandLevels{
			None:     Level(scorer.PriorityInformational),
			Low:      Level(scorer.PriorityWarning),
			Medium:   Level(scorer.PriorityError),
			High:     Level(scorer.PriorityCritical),
			Critical: Level(scorer.PriorityCritical),
		},
		YoungAnomalyPriority: BandLevels{
			None:     Level(scorer.PriorityInformational),
			Low:      Level(scorer.PriorityNotice),
			Medium:   Level(scorer.PriorityWarning),
			High:     Level(scorer.PriorityError),
			Critical: Level(scorer.PriorityCritical),
		},
		Maturity:   MaturityConfig{MinEvents: 5000},
		FalcoRaise: BandRaise{Medium: 1, High: 2, Critical: 3},
		Sinks: map[string]SinkConfig{
			"stdout":  {MinPriority: Level(scorer.PriorityDebug)},
			"kafka":   {MinPriority: Level(scorer.PriorityNotice)},
			"slack":   {MinPriority: Level(scorer.PriorityWarning)},
			"webhook": {MinPriority: Level(scorer.PriorityNotice)},
		},
		Dedup: DedupConfig{
			Window:  time.Minute,
			Kinds:   []string{scorer.KindAnomaly, scorer.KindEnd},
			MaxKeys: 65536,
		},
	}
}

// Validate checks the configuration. Its errors name the field relative to
// this file ("rules[2].suppress.reason: empty").
func (c *Config) Validate() error {
	errs := c.validate()
	if len(errs) == 0 {
		return nil
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// fieldError is one validation problem at a path in the configuration.
type fieldError struct {
	path []any // string keys and int indexes
	msg  string
}

func (e *fieldError) Error() string { return pathString(e.path) + ": " + e.msg }

func pathString(p []any) string {
	var b strings.Builder
	for _, el := range p {
		switch v := el.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(v) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

// validate checks c in the order its sections appear in the file; every
// message names its field by path.
func (c *Config) validate() []*fieldError {
	v := &checker{c: c}
	v.bands()
	v.priorities()
	v.sinks()
	v.listOfSinks(c.DefaultSinks, "default_sinks")
	v.dedup()
	names := map[string]int{}
	for i := range c.Rules {
		v.rule(i, &c.Rules[i], names)
	}
	return v.errs
}

// checker collects the errors of one validate.
type checker struct {
	c    *Config
	errs []*fieldError
}

func (v *checker) add(msg string, path ...any) {
	v.errs = append(v.errs, &fieldError{path: path, msg: msg})
}

// bands: positive ratios, strictly increasing.
func (v *checker) bands() {
	b := v.c.Bands
	ratios := []struct {
		name string
		v    float64
	}{{"low", b.Low}, {"medium", b.Medium}, {"high", b.High}, {"critical", b.Critical}}
	for i, r := range ratios {
		switch {
		case math.IsNaN(r.v) || math.IsInf(r.v, 0) || r.v <= 0:
			v.add(fmt.Sprintf("must be a positive number, got %v", r.v), "bands", r.name)
		case i > 0 && r.v <= ratios[i-1].v:
			v.add(fmt.Sprintf("must be greater than %s (%v), got %v", ratios[i-1].name, ratios[i-1].v, r.v), "bands", r.name)
		}
	}
}

// priorities: the anomaly priorities per band, maturity, falco_raise.
func (v *checker) priorities() {
	c := v.c
	for _, t := range []struct {
		key string
		l   BandLevels
	}{{"anomaly_priority", c.AnomalyPriority}, {"young_anomaly_priority", c.YoungAnomalyPriority}} {
		for _, l := range []struct {
			name string
			v    Level
		}{{"none", t.l.None}, {"low", t.l.Low}, {"medium", t.l.Medium}, {"high", t.l.High}, {"critical", t.l.Critical}} {
			if !scorer.Priority(l.v).Valid() {
				v.add("invalid priority", t.key, l.name)
			}
		}
	}
	if c.Maturity.MinMonitoring < 0 {
		v.add(fmt.Sprintf("must not be negative, got %s", c.Maturity.MinMonitoring), "maturity", "min_monitoring")
	}
	for _, r := range []struct {
		name string
		v    int
	}{{"none", c.FalcoRaise.None}, {"low", c.FalcoRaise.Low}, {"medium", c.FalcoRaise.Medium},
		{"high", c.FalcoRaise.High}, {"critical", c.FalcoRaise.Critical}} {
		if r.v < 0 || r.v > 7 {
			v.add(fmt.Sprintf("%d out of range 0..7", r.v), "falco_raise", r.name)
		}
	}
}

// sinks: at least one, named, with valid minimum priorities.
func (v *checker) sinks() {
	c := v.c
	if len(c.Sinks) == 0 {
		v.add("empty: at least one sink is needed to route alerts", "sinks")
	}
	for _, name := range sortedKeys(c.Sinks) {
		if strings.TrimSpace(name) == "" {
			v.add("empty sink name", "sinks")
			continue
		}
		if !scorer.Priority(c.Sinks[name].MinPriority).Valid() {
			v.add("invalid priority", "sinks", name, "min_priority")
		}
	}
}

// listOfSinks: every name a known sink, none twice.
func (v *checker) listOfSinks(list []string, path ...any) {
	seen := map[string]bool{}
	for i, s := range list {
		p := append(append([]any{}, path...), i)
		if _, ok := v.c.Sinks[s]; !ok {
			v.add(fmt.Sprintf("unknown sink %q (known: %s)", s, strings.Join(sortedKeys(v.c.Sinks), ", ")), p...)
		} else if seen[s] {
			v.add(fmt.Sprintf("duplicate sink %q", s), p...)
		}
		seen[s] = true
	}
}

func (v *checker) dedup() {
	d := v.c.Dedup
	if d.Window < 0 {
		v.add(fmt.Sprintf("must not be negative, got %s", d.Window), "dedup", "window")
	}
	if d.Window > 0 && d.MaxKeys <= 0 {
		v.add(fmt.Sprintf("must be positive when dedup.window is set, got %d", d.MaxKeys), "dedup", "max_keys")
	}
	for i, k := range d.Kinds {
		if !validKind(k) {
			v.add(fmt.Sprintf("unknown kind %q (want falco, anomaly or sequence_end)", k), "dedup", "kinds", i)
		}
	}
}

// rule checks rules[i]; names maps the names seen so far to their index.
func (v *checker) rule(i int, r *Rule, names map[string]int) {
	switch prev, dup := names[r.Name]; {
	case strings.TrimSpace(r.Name) == "":
		v.add("empty: every rule needs a name", "rules", i, "name")
	case dup:
		v.add(fmt.Sprintf("duplicate rule name %q (also rules[%d])", r.Name, prev), "rules", i, "name")
	default:
		names[r.Name] = i
	}
	v.match(i, &r.Match)
	if r.SetPriority != nil && !scorer.Priority(*r.SetPriority).Valid() {
		v.add("invalid priority", "rules", i, "set_priority")
	}
	if r.Raise < -7 || r.Raise > 7 {
		v.add(fmt.Sprintf("%d out of range -7..7", r.Raise), "rules", i, "raise")
	}
	v.listOfSinks(r.Sinks, "rules", i, "sinks")
	v.action(i, r)
}

// match checks rules[i].match: no empty pattern, known bands and kinds.
func (v *checker) match(i int, m *Match) {
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"rules", m.Rules}, {"tags", m.Tags}, {"images", m.Images}} {
		for j, p := range list.patterns {
			if p == "" {
				v.add("empty pattern", "rules", i, "match", list.key, j)
			}
		}
	}
	for j, bd := range m.Bands {
		if !validBand(bd) {
			v.add(fmt.Sprintf("unknown band %q (want none, low, medium, high or critical)", bd), "rules", i, "match", "bands", j)
		}
	}
	for j, k := range m.Kinds {
		if !validKind(k) {
			v.add(fmt.Sprintf("unknown kind %q (want falco, anomaly or sequence_end)", k), "rules", i, "match", "kinds", j)
		}
	}
	if m.MinPriority != nil && !scorer.Priority(*m.MinPriority).Valid() {
		v.add("invalid priority", "rules", i, "match", "min_priority")
	}
}

// action: a suppression stands alone and says why and until when; continue
// needs something to do.
func (v *checker) action(i int, r *Rule) {
	if r.Suppress != nil {
		if r.SetPriority != nil || r.Raise != 0 || len(r.Sinks) > 0 || r.Continue {
			v.add("cannot be combined with set_priority, raise, sinks or continue", "rules", i, "suppress")
		}
		if strings.TrimSpace(r.Suppress.Reason) == "" {
			v.add("empty: a suppression needs a reason", "rules", i, "suppress", "reason")
		}
		if r.Suppress.Until.IsZero() {
			v.add("missing: a suppression needs an expiry time (RFC 3339)", "rules", i, "suppress", "until")
		}
	} else if r.Continue && r.SetPriority == nil && r.Raise == 0 && len(r.Sinks) == 0 {
		v.add("continue without an action does nothing: set set_priority, raise or sinks", "rules", i, "continue")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Level is a Falco priority in configuration. It decodes from YAML
// case-insensitively ("warning", "Info") and reports bad values with their
// line.
type Level scorer.Priority

// Priority returns the level as a scorer.Priority.
func (l Level) Priority() scorer.Priority { return scorer.Priority(l) }

// String returns Falco's spelling.
func (l Level) String() string { return scorer.Priority(l).String() }

// UnmarshalYAML reads a priority name.
func (l *Level) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a priority name, got a %s", n.Line, kindName(n.Kind))}}
	}
	p, err := scorer.ParsePriority(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*l = Level(p)
	return nil
}

// MarshalYAML writes Falco's spelling.
func (l Level) MarshalYAML() (any, error) { return scorer.Priority(l).String(), nil }

// Time is a point in time in configuration, written in RFC 3339
// ("2027-01-31T00:00:00Z"); bad values are reported with their line.
type Time struct{ time.Time }

// UnmarshalYAML reads an RFC 3339 time.
func (t *Time) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want an RFC 3339 time, got a %s", n.Line, kindName(n.Kind))}}
	}
	v, err := time.Parse(time.RFC3339Nano, n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want an RFC 3339 time like 2027-01-31T00:00:00Z, got %q", n.Line, n.Value)}}
	}
	t.Time = v
	return nil
}

// MarshalYAML writes RFC 3339.
func (t Time) MarshalYAML() (any, error) { return t.Time.Format(time.RFC3339Nano), nil }

// Patterns is a list of exact strings or globs. In YAML it is a sequence of
// strings or a single string.
type Patterns []string

// UnmarshalYAML accepts a string or a sequence of strings.
func (p *Patterns) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*p = Patterns{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Patterns, 0, len(n.Content))
		var errs []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: want a string, got a %s", c.Line, kindName(c.Kind)))
				continue
			}
			out = append(out, c.Value)
		}
		if len(errs) > 0 {
			return &yaml.TypeError{Errors: errs}
		}
		*p = out
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a string or a list of strings, got a %s", n.Line, kindName(n.Kind))}}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "node"
}
