package sinks

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-sink delivery metrics. Create them once per registry
// with NewMetrics and give the same value to every Dispatcher: each series
// carries a bounded "sink" label.
type Metrics struct {
	sent         *prometheus.CounterVec
	failed       *prometheus.CounterVec
	retried      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	sendDuration *prometheus.HistogramVec
	inFlight     *prometheus.GaugeVec
	queueDepth   *depthCollector
}

// NewMetrics creates the delivery metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "falco_scorer", "sink"
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sent_total",
			Help: "Alerts the destination confirmed and the outbox acknowledged.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "failed_total",
			Help: "Alerts whose send attempt failed, by bounded reason.",
		}, []string{"sink", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retried_total",
			Help: "Alerts sent again after a failed attempt.",
		}, []string{"sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_lettered_total",
			Help: "Alerts moved to the dead-letter set: permanent, expired or undecodable.",
		}, []string{"sink", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "delivery_latency_seconds",
			Help:    "Time from outbox enqueue to acknowledgement.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600},
		}, []string{"sink"}),
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "send_duration_seconds",
			Help:    "Duration of one Send call to the destination.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"sink"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "in_flight",
			Help: "Alerts read from the outbox and not yet acknowledged or dead-lettered.",
		}, []string{"sink"}),
		queueDepth: &depthCollector{
			desc: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "queue_depth"),
				"Alerts waiting in the outbox for the sink, read from the outbox at scrape time (only when the outbox can count them cheaply).",
				[]string{"sink"}, nil),
			sinks: map[string]PendingCounter{},
		},
	}
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.retried, m.deadLettered, m.latency, m.sendDuration, m.inFlight, m.queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sink metrics: %w", err)
		}
	}
	return m, nil
}

// depthCollector exports queue_depth from the outbox's own count of each
// sink's pending entries when scraped. A gauge the dispatcher set after
// each outbox read went stale in an outage: the dispatcher retries one
// batch and reads nothing more while alerts pile up in the outbox (25
// shown while 100,000 waited).
type depthCollector struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	sinks map[string]PendingCounter // by sink name
}

// track exports the pending count of sink from pc (replacing an earlier
// dispatcher's of the same name).
func (c *depthCollector) track(sink string, pc PendingCounter) {
	c.mu.Lock()
	c.sinks[sink] = pc
	c.mu.Unlock()
}

func (c *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reads each count outside the lock: a count takes the outbox's
// own lock, which must not wait behind a dispatcher being created.
func (c *depthCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	type tracked struct {
		sink string
		pc   PendingCounter
	}
	all := make([]tracked, 0, len(c.sinks))
	for s, pc := range c.sinks {
		all = append(all, tracked{s, pc})
	}
	c.mu.Unlock()
	for _, t := range all {
		n, err := t.pc.PendingCount(t.sink)
		if err != nil {
			continue // no value rather than a wrong one
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), t.sink)
	}
}
