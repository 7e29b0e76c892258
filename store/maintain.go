package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Run performs maintenance every GCInterval until ctx is cancelled: value-log
// GC until Badger has nothing to rewrite, expiry of old buckets and idle
// images, and the disk and queue gauges. It returns nil when ctx is
// cancelled; maintenance failures are logged and counted, never fatal.
func (d *DB) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.GCInterval)
	defer t.Stop()
	// The value log takes every alert payload: at thousands of alerts a
	// second, waiting gc_interval between GCs would let it grow by GBs.
	// A GC with nothing to rewrite returns at once.
	vt := time.NewTicker(min(d.cfg.GCInterval, valueLogGCInterval))
	defer vt.Stop()
	d.Maintain(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.Maintain(ctx)
		case <-vt.C:
			d.maintainValueLog(ctx)
		}
	}
}

// valueLogGCInterval is the longest time between value-log GCs.
const valueLogGCInterval = 15 * time.Second

func (d *DB) maintainValueLog(ctx context.Context) {
	if d.cfg.InMemory {
		return
	}
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	if err := d.acquire(); err != nil {
		return
	}
	defer d.life.RUnlock()
	d.valueLogGC(ctx)
}

// Maintain runs one maintenance pass now (Run calls it periodically).
func (d *DB) Maintain(ctx context.Context) {
	d.maintMu.Lock()
	defer d.maintMu.Unlock()
	if err := d.acquire(); err != nil {
		return
	}
	defer d.life.RUnlock()
	now := d.now()
	if d.cfg.BucketRetention > 0 {
		n, err := d.dropBucketsBefore(now.Add(-d.cfg.BucketRetention))
		d.m.expiredBuckets.Add(float64(n))
		if err != nil {
			d.m.maintErrors.WithLabelValues("expire_buckets").Inc()
			d.log.Warn().Err(err).Msg("expire buckets")
		}
	}
	if d.cfg.ImageTTL > 0 {
		n, err := d.dropIdleImages(now.Add(-d.cfg.ImageTTL))
		d.m.expiredImages.Add(float64(n))
		if err != nil {
			d.m.maintErrors.WithLabelValues("expire_images").Inc()
			d.log.Warn().Err(err).Msg("expire idle images")
		} else if n > 0 {
			d.log.Info().Int("images", n).Dur("image_ttl", d.cfg.ImageTTL).Msg("dropped idle images")
		}
	}
	if err := d.recount(); err != nil {
		d.m.maintErrors.WithLabelValues("recount").Inc()
		d.log.Warn().Err(err).Msg("recount queues")
	}
	if !d.cfg.InMemory {
		d.valueLogGC(ctx)
		if usage, err := dirUsage(d.cfg.Dir); err == nil {
			for kind, n := range usage {
				d.m.diskBytes.WithLabelValues(kind).Set(float64(n))
			}
			d.m.diskBytes.WithLabelValues("journal").Set(float64(d.journal.Usage()))
		}
		if free, err := d.diskFree(d.cfg.Dir); err == nil {
			d.m.diskFree.Set(float64(free))
		}
	}
}

// recount resets the queue gauges from a keys-only scan (outbox.recount)
// and the journal's.
func (d *DB) recount() error {
	if err := d.outbox.recount(); err != nil {
		return err
	}
	d.m.journalEntries.Set(float64(d.journal.Outstanding()))
	return nil
}

// dirUsage sums the bytes allocated to Badger's files by kind: "lsm"
// (tables), "vlog" (value log), "wal" (memtable logs) and "other".
// Badger's own Size is refreshed only once a minute.
func dirUsage(dir string) (map[string]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	usage := map[string]int64{"lsm": 0, "vlog": 0, "wal": 0, "other": 0}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue
		}
		kind := "other"
		switch filepath.Ext(e.Name()) {
		case ".sst":
			kind = "lsm"
		case ".vlog":
			kind = "vlog"
		case ".mem":
			kind = "wal"
		}
		usage[kind] += allocated(fi)
	}
	return usage, nil
}

// valueLogGC rewrites value-log files until Badger reports nothing left to
// rewrite (bounded, so a pass always ends).
func (d *DB) valueLogGC(ctx context.Context) {
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		err := d.bdb.RunValueLogGC(d.cfg.GCDiscardRatio)
		switch {
		case err == nil:
			d.m.gcRuns.WithLabelValues("rewrite").Inc()
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			d.m.gcRuns.WithLabelValues("no_rewrite").Inc()
		default:
			d.m.gcRuns.WithLabelValues("error").Inc()
			d.log.Warn().Err(err).Msg("value log gc")
		}
		return
	}
}
