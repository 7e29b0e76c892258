package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-scorer/falco-scorer/store/journal"
)

type metrics struct {
	appendedEvents        prometheus.Counter
	batches               prometheus.Counter
	batchEvents           prometheus.Histogram
	syncSeconds           prometheus.Histogram
	backgroundSyncSeconds prometheus.Histogram
	syncs                 *prometheus.CounterVec // file: journal, badger
	appendErrors          *prometheus.CounterVec // reason
	unavailable           prometheus.Gauge
	backlogged            prometheus.Gauge
	journalEntries        prometheus.Gauge
	pending               *prometheus.GaugeVec // sink
	dead                  *prometheus.GaugeVec // sink
	diskBytes             *prometheus.GaugeVec // kind: lsm, vlog, wal, other
	diskFree              prometheus.Gauge
	gcRuns                *prometheus.CounterVec // outcome
	maintErrors           *prometheus.CounterVec // step
	expiredBuckets        prometheus.Counter
	expiredImages         prometheus.Counter
	flushSeconds          prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "falco_scorer", "store"
	m := &metrics{
		appendedEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_appended_events_total", Help: "Events made durable in the journal."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_commits_total", Help: "Group commits (one write and one sync each)."}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_commit_events", Help: "Events per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_commit_seconds", Help: "Time to write and sync one group commit (to write it, with journal_sync_interval).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8)}),
		backgroundSyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_background_sync_seconds", Help: "Time of one background journal sync (journal_sync_interval > 0).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8)}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_syncs_total", Help: "Syncs (fdatasync) the journal issued, by file: journal segments (before acknowledgements, in the background, new segment headers) and badger (before a segment is recycled); the disk's sync budget."}, []string{"file"}),
		appendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_append_errors_total", Help: "Events refused by the journal, by reason."}, []string{"reason"}),
		unavailable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "unavailable", Help: "1 while the journal cannot persist events (ingest answers 503)."}),
		backlogged: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "outbox_backlogged", Help: "1 while some sink's outbox holds max_outbox_entries alerts (ingest answers 429)."}),
		journalEntries: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "journal_entries", Help: "Journal entries not yet completed (approximate between maintenance passes)."}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "outbox_pending", Help: "Outbox entries awaiting delivery, per sink."}, []string{"sink"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "dead_letters", Help: "Dead letters, per sink."}, []string{"sink"}),
		diskBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "disk_bytes", Help: "Bytes allocated on disk to the store's files, by kind (Badger's lsm, vlog, wal and other; journal segments)."}, []string{"kind"}),
		diskFree: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "disk_free_bytes", Help: "Free bytes on the file system holding the data directory."}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "value_log_gc_runs_total", Help: "Value-log GC runs, by outcome (rewrite, no_rewrite, error)."}, []string{"outcome"}),
		maintErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "maintenance_errors_total", Help: "Failed maintenance steps, by step."}, []string{"step"}),
		expiredBuckets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "expired_bucket_blobs_total", Help: "Baseline count blobs dropped for age."}),
		expiredImages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "expired_images_total", Help: "Images dropped because no baseline flush was seen for image_ttl."}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "baseline_flush_seconds", Help: "Time to write one baseline flush.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.appendedEvents, m.batches, m.batchEvents, m.syncSeconds, m.backgroundSyncSeconds, m.syncs,
		m.appendErrors, m.unavailable, m.backlogged, m.journalEntries, m.pending, m.dead, m.diskBytes, m.diskFree,
		m.gcRuns, m.maintErrors, m.expiredBuckets, m.expiredImages, m.flushSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}

// journal returns the journal's instruments: the store's journal_* series,
// its syncs of journal files and its maintenance errors of the journal's
// steps (journal_sync, journal_segments).
func (m *metrics) journal() *journal.Metrics {
	return &journal.Metrics{
		Appended:              m.appendedEvents,
		Commits:               m.batches,
		CommitEvents:          m.batchEvents,
		CommitSeconds:         m.syncSeconds,
		BackgroundSyncSeconds: m.backgroundSyncSeconds,
		Syncs:                 m.syncs.WithLabelValues("journal"),
		Refused:               m.appendErrors,
		Unavailable:           m.unavailable,
		Outstanding:           m.journalEntries,
		SyncErrors:            m.maintErrors.WithLabelValues("journal_sync"),
		SegmentErrors:         m.maintErrors.WithLabelValues("journal_segments"),
	}
}
