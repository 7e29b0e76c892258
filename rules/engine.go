package rules

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// Stats counts decisions since the Engine was built.
type Stats struct {
	Routed              uint64 // delivered to at least one sink
	Unrouted            uint64 // below every candidate sink's minimum priority
	Suppressed          uint64 // by a suppression rule
	Duplicates          uint64 // by the dedup window
	ExpiredSuppressions uint64 // matches of suppression rules whose expiry had passed (ignored)
	DedupEvictions      uint64 // dedup keys evicted to stay within dedup.max_keys
	DedupKeys           int    // dedup keys currently remembered
}

// Engine applies a Config to alerts. Build it with Parse, Load or Default.
// Decide is safe for concurrent use.
type Engine struct {
	cfg          Config
	rules        []compiledRule
	sinks        []string // all configured sink names, sorted
	defaultSinks []string // sorted
	minPriority  map[string]scorer.Priority
	dedupKinds   map[string]bool
	dedup        *dedup // nil when disabled

	routed, unrouted, suppressed, duplicates, expired atomic.Uint64
}

type compiledRule struct {
	name        string
	rules       []pattern
	tags        []pattern
	namespaces  []pattern
	images      []pattern
	bands       map[string]bool
	kinds       map[string]bool
	minPriority *scorer.Priority
	setPriority *scorer.Priority
	raise       int
	sinks       []string // nil: keep
	suppress    *Suppress
	cont        bool
}

// newEngine builds an Engine from a valid Config.
func newEngine(cfg Config) *Engine {
	e := &Engine{
		cfg:         cfg,
		sinks:       sortedKeys(cfg.Sinks),
		minPriority: make(map[string]scorer.Priority, len(cfg.Sinks)),
		dedupKinds:  make(map[string]bool, len(cfg.Dedup.Kinds)),
	}
	for name, s := range cfg.Sinks {
		e.minPriority[name] = s.MinPriority.Priority()
	}
	if len(cfg.DefaultSinks) > 0 {
		e.defaultSinks = append([]string(nil), cfg.DefaultSinks...)
		sort.Strings(e.defaultSinks)
	} else {
		e.defaultSinks = e.sinks
	}
	for _, k := range cfg.Dedup.Kinds {
		e.dedupKinds[k] = true
	}
	if cfg.Dedup.Window > 0 && cfg.Dedup.MaxKeys > 0 && len(cfg.Dedup.Kinds) > 0 {
		e.dedup = newDedup(cfg.Dedup.Window, cfg.Dedup.MaxKeys)
	}
	for _, r := range cfg.Rules {
		e.rules = append(e.rules, compileRule(r))
	}
	return e
}

func compileRule(r Rule) compiledRule {
	c := compiledRule{
		name:       r.Name,
		rules:      compilePatterns(r.Match.Rules),
		tags:       compilePatterns(r.Match.Tags),
		namespaces: compilePatterns(r.Match.Namespaces),
		images:     compilePatterns(r.Match.Images),
		raise:      r.Raise,
		cont:       r.Continue,
	}
	if len(r.Match.Bands) > 0 {
		c.bands = make(map[string]bool, len(r.Match.Bands))
		for _, b := range r.Match.Bands {
			c.bands[b] = true
		}
	}
	if len(r.Match.Kinds) > 0 {
		c.kinds = make(map[string]bool, len(r.Match.Kinds))
		for _, k := range r.Match.Kinds {
			c.kinds[k] = true
		}
	}
	if r.Match.MinPriority != nil {
		p := r.Match.MinPriority.Priority()
		c.minPriority = &p
	}
	if r.SetPriority != nil {
		p := r.SetPriority.Priority()
		c.setPriority = &p
	}
	if len(r.Sinks) > 0 {
		c.sinks = append([]string(nil), r.Sinks...)
		sort.Strings(c.sinks)
	}
	if r.Suppress != nil {
		s := *r.Suppress
		c.suppress = &s
	}
	return c
}

func (r *compiledRule) matches(a *scorer.Alert, band string, base scorer.Priority) bool {
	if r.kinds != nil && !r.kinds[a.Kind] {
		return false
	}
	if r.bands != nil && !r.bands[band] {
		return false
	}
	if r.minPriority != nil && !base.AtLeast(*r.minPriority) {
		return false
	}
	if r.rules != nil && !matchAny(r.rules, a.Event.Rule) {
		return false
	}
	if r.namespaces != nil && !matchAny(r.namespaces, a.Subject.Namespace) {
		return false
	}
	if r.images != nil && !matchImage(r.images, a) {
		return false
	}
	if r.tags != nil {
		found := false
		for _, t := range a.Event.Tags {
			if matchAny(r.tags, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// matchImage matches the alert's image key, and also its repository and
// repository:tag: the key is repo@sha256:… whenever Falco gives a digest,
// and a pattern like "ghcr.io/acme/app:*" or "nginx" must still apply.
func matchImage(ps []pattern, a *scorer.Alert) bool {
	key := a.Subject.Image
	if matchAny(ps, key) {
		return true
	}
	repo := scorer.ImageRepository(key)
	if repo == "" || repo == key {
		return false
	}
	if matchAny(ps, repo) {
		return true
	}
	if tag := a.Event.Field(scorer.FieldImageTag...); tag != "" && strings.Contains(key, "@") {
		return matchAny(ps, repo+":"+tag)
	}
	return false
}

// Band returns the anomaly band of a score/threshold ratio. NaN, infinite
// below zero, and ratios under bands.low give BandNone.
func (e *Engine) Band(ratio float64) string {
	b := e.cfg.Bands
	switch {
	case math.IsNaN(ratio):
		return BandNone
	case ratio >= b.Critical:
		return BandCritical
	case ratio >= b.High:
		return BandHigh
	case ratio >= b.Medium:
		return BandMedium
	case ratio >= b.Low:
		return BandLow
	}
	return BandNone
}

func (l BandLevels) of(band string) scorer.Priority {
	switch band {
	case BandLow:
		return l.Low.Priority()
	case BandMedium:
		return l.Medium.Priority()
	case BandHigh:
		return l.High.Priority()
	case BandCritical:
		return l.Critical.Priority()
	}
	return l.None.Priority()
}

func (r BandRaise) of(band string) int {
	switch band {
	case BandLow:
		return r.Low
	case BandMedium:
		return r.Medium
	case BandHigh:
		return r.High
	case BandCritical:
		return r.Critical
	}
	return r.None
}

// mature reports whether the baseline m counts as mature at now
// (Config.Maturity).
func (e *Engine) mature(m *scorer.Maturity, now time.Time) bool {
	c := e.cfg.Maturity
	if m.State != scorer.StateMonitoring || m.Events < c.MinEvents {
		return false
	}
	return c.MinMonitoring <= 0 || !m.Graduated.IsZero() && now.Sub(m.Graduated) >= c.MinMonitoring
}

// Decide computes the band, final priority, sinks and suppression of one
// alert at time now. It reads a and does not modify it.
//
// Order: band from a.Score.Ratio; base priority (Falco alerts: the event's
// own priority raised by falco_raise for the band, never lowered; anomaly
// and sequence_end alerts: anomaly_priority for the band on a mature
// baseline, young_anomaly_priority on a young one); rules in order;
// sinks (the rule's, else default_sinks, else all) filtered by each sink's
// min_priority; then dedup of the kinds in dedup.kinds.
func (e *Engine) Decide(a *scorer.Alert, now time.Time) scorer.Decision {
	band := e.Band(a.Score.Ratio)
	var base scorer.Priority
	var why strings.Builder
	switch a.Kind {
	case scorer.KindAnomaly, scorer.KindEnd:
		if e.mature(&a.Baseline, now) {
			base = e.cfg.AnomalyPriority.of(band)
			fmt.Fprintf(&why, "%s band %s (score %.2fx threshold) on a mature baseline", a.Kind, band, finite(a.Score.Ratio))
		} else {
			base = e.cfg.YoungAnomalyPriority.of(band)
			fmt.Fprintf(&why, "%s band %s (score %.2fx threshold) on a young baseline", a.Kind, band, finite(a.Score.Ratio))
		}
	default: // Falco alerts, and kinds this version does not know
		own := a.Event.Priority
		if !own.Valid() {
			own = scorer.PriorityInformational
		}
		base = own
		if n := e.cfg.FalcoRaise.of(band); n > 0 {
			base = own.Raise(n)
			fmt.Fprintf(&why, "falco %s raised %d level(s) for anomaly band %s", own, n, band)
		} else {
			fmt.Fprintf(&why, "falco %s, anomaly band %s", own, band)
		}
	}
	d := scorer.Decision{Priority: base, Band: band}
	sinks := e.defaultSinks
	for i := range e.rules {
		r := &e.rules[i]
		if !r.matches(a, band, base) {
			continue
		}
		if r.suppress != nil {
			if !now.Before(r.suppress.Until.Time) {
				e.expired.Add(1)
				continue
			}
			e.suppressed.Add(1)
			d.Suppressed = true
			d.Reason = fmt.Sprintf("suppressed by rule %q until %s: %s", r.name,
				r.suppress.Until.UTC().Format(time.RFC3339), r.suppress.Reason)
			return d
		}
		if r.setPriority != nil {
			d.Priority = *r.setPriority
		}
		if r.raise != 0 {
			d.Priority = d.Priority.Raise(r.raise)
		}
		if r.sinks != nil {
			sinks = r.sinks
		}
		fmt.Fprintf(&why, "; rule %q", r.name)
		if !r.cont {
			break
		}
	}
	if d.Priority != base {
		fmt.Fprintf(&why, " -> %s", d.Priority)
	}
	for _, s := range sinks {
		if d.Priority.AtLeast(e.minPriority[s]) {
			d.Sinks = append(d.Sinks, s)
		}
	}
	if len(d.Sinks) == 0 {
		e.unrouted.Add(1)
		fmt.Fprintf(&why, "; %s is below every sink's minimum priority", d.Priority)
		d.Reason = why.String()
		return d
	}
	if e.dedup != nil && e.dedupKinds[a.Kind] {
		key := a.Subject.Image + "\x00" + a.Event.Rule + "\x00" + a.Kind
		if a.Kind != scorer.KindFalco {
			// Scorer alerts of one image share the observation rule: key
			// them by process too, so one process's false alarm never hides
			// another process's anomaly (an attack) in the same window.
			key += "\x00" + a.Subject.ContainerID + "\x00" + strconv.FormatInt(a.Subject.PID, 10)
		}
		if e.dedup.duplicate(key, now) {
			e.duplicates.Add(1)
			d.Suppressed = true
			d.Sinks = nil
			d.Reason = fmt.Sprintf("duplicate: same image, rule and kind (and process, for scorer alerts) delivered less than %s ago", e.cfg.Dedup.Window)
			return d
		}
	}
	e.routed.Add(1)
	d.Reason = why.String()
	return d
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// Sinks returns the names of every sink the configuration knows, sorted.
func (e *Engine) Sinks() []string { return append([]string(nil), e.sinks...) }

// Expired returns the names of suppression rules whose expiry is at or
// before now: they no longer suppress anything and can be removed. The
// service logs them once at start.
func (e *Engine) Expired(now time.Time) []string {
	var out []string
	for _, r := range e.rules {
		if r.suppress != nil && !now.Before(r.suppress.Until.Time) {
			out = append(out, r.name)
		}
	}
	return out
}

// Stats returns the counters so far.
func (e *Engine) Stats() Stats {
	s := Stats{
		Routed:              e.routed.Load(),
		Unrouted:            e.unrouted.Load(),
		Suppressed:          e.suppressed.Load(),
		Duplicates:          e.duplicates.Load(),
		ExpiredSuppressions: e.expired.Load(),
	}
	if e.dedup != nil {
		s.DedupEvictions = e.dedup.evicted.Load()
		s.DedupKeys = e.dedup.len()
	}
	return s
}

// Register adds the engine's metrics to reg:
// falco_scorer_rules_decisions_total{outcome}, with outcome one of routed,
// unrouted, suppressed, duplicate; falco_scorer_rules_expired_suppressions_total;
// falco_scorer_rules_dedup_evictions_total; falco_scorer_rules_dedup_keys.
func (e *Engine) Register(reg prometheus.Registerer) error {
	if err := reg.Register(newCollector(e)); err != nil {
		return fmt.Errorf("register rules metrics: %w", err)
	}
	return nil
}

type collector struct {
	e                                   *Engine
	decisions, expired, evictions, keys *prometheus.Desc
}

func newCollector(e *Engine) *collector {
	return &collector{
		e: e,
		decisions: prometheus.NewDesc("falco_scorer_rules_decisions_total",
			"Routing decisions by outcome (routed, unrouted, suppressed, duplicate).", []string{"outcome"}, nil),
		expired: prometheus.NewDesc("falco_scorer_rules_expired_suppressions_total",
			"Matches of suppression rules whose expiry had passed; they were ignored.", nil, nil),
		evictions: prometheus.NewDesc("falco_scorer_rules_dedup_evictions_total",
			"Dedup keys evicted to stay within dedup.max_keys.", nil, nil),
		keys: prometheus.NewDesc("falco_scorer_rules_dedup_keys",
			"Dedup keys currently remembered.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.decisions
	ch <- c.expired
	ch <- c.evictions
	ch <- c.keys
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, t, v, labels...); err == nil {
			ch <- m
		}
	}
	send(c.decisions, prometheus.CounterValue, float64(s.Routed), "routed")
	send(c.decisions, prometheus.CounterValue, float64(s.Unrouted), "unrouted")
	send(c.decisions, prometheus.CounterValue, float64(s.Suppressed), "suppressed")
	send(c.decisions, prometheus.CounterValue, float64(s.Duplicates), "duplicate")
	send(c.expired, prometheus.CounterValue, float64(s.ExpiredSuppressions))
	send(c.evictions, prometheus.CounterValue, float64(s.DedupEvictions))
	send(c.keys, prometheus.GaugeValue, float64(s.DedupKeys))
}
