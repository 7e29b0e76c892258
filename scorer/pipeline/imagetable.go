package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// image returns the worker's image for key, creating it (from a stored
// predecessor of the same repository when there is one) on first sight.
func (w *worker) image(key string, now time.Time) *image {
	if img, ok := w.images[key]; ok {
		if img.retryLoad.IsZero() || now.Before(img.retryLoad) {
			w.imageLRU.MoveToFront(img.elem)
			return img
		}
		// A stand-in: its counts go with the next flush, and the load below
		// merges them into the stored baseline it reads.
		w.stashUnflushed(img)
		w.removeImage(img)
	}
	img, err := w.loadImage(key, now)
	switch {
	case err != nil:
		img = w.newImage(key, now)
		img.retryLoad = now.Add(loadRetryInterval)
	case img == nil:
		img = w.newImage(key, now)
		w.inherit(img, now)
	}
	w.addImage(img)
	return img
}

// addImage makes img live in this worker, evicting the least recently seen
// images beyond the worker's share of max_images.
func (w *worker) addImage(img *image) {
	if old, ok := w.images[img.key]; ok {
		w.removeImage(old)
	}
	w.images[img.key] = img
	img.elem = w.imageLRU.PushFront(img)
	w.met.images.WithLabelValues(img.state).Inc()
	for len(w.images) > w.maxImages {
		w.evictImage(w.imageLRU.Back().Value.(*image))
	}
	w.imageCount.Store(int64(len(w.images)))
}

// removeImage drops img from memory (its stored baseline stays).
func (w *worker) removeImage(img *image) {
	img.removed = true
	w.imageLRU.Remove(img.elem)
	delete(w.images, img.key)
	w.met.images.WithLabelValues(img.state).Dec()
	w.imageCount.Store(int64(len(w.images)))
}

// evictImage moves the least recently seen image out of memory: its
// unflushed counts go to the next flush, and its next event reloads it from
// the store. Its live sequences keep scoring against the evicted copy until
// they end (a sequence notices a new copy and restarts).
func (w *worker) evictImage(img *image) {
	w.stashUnflushed(img)
	w.removeImage(img)
	w.met.imagesEvicted.Inc()
}

// stashUnflushed moves img's counts not yet flushed to the next flush.
func (w *worker) stashUnflushed(img *image) {
	if img.dirty && w.deps.Baselines != nil {
		if d, err := img.takeDelta(w.deps.Now().Truncate(w.cfg.BucketSize)); err == nil {
			w.unflushed = append(w.unflushed, d)
		}
	}
}

// loadImage reads one stored image when the store can do that; nil when it
// cannot or has none. An error means the store has it but could not read it.
func (w *worker) loadImage(key string, now time.Time) (*image, error) {
	loader, ok := w.deps.Baselines.(scorer.ImageLoader)
	if !ok {
		return nil, nil
	}
	since := w.cfg.horizonStart(now)
	meta, buckets, found, err := loader.LoadImage(key, since)
	if err != nil {
		w.log.Error().Err(err).Str("image", scorer.TruncateForLog(key)).Dur("retry_in", loadRetryInterval).
			Msg("load baseline; learning in a stand-in that leaves the stored baseline's state alone until it loads")
		return nil, err
	}
	// Counts of an evicted copy (or of a failed flush) that the next flush
	// will write: the reloaded model must hold them as the store soon will,
	// or the horizon would later subtract counts the model never had. They
	// are newer than the store's, and so is their meta.
	for _, d := range w.unflushed {
		if d.Image != key {
			continue
		}
		found = true
		if !d.Bucket.Before(since) {
			buckets = append(buckets, scorer.BaselineBucket{Bucket: d.Bucket, Counts: d.Counts})
		}
		if d.Meta != nil {
			meta = d.Meta
		}
	}
	if !found {
		return nil, nil
	}
	img, err := w.restoreImage(key, meta, buckets, since)
	if err != nil {
		w.log.Error().Err(err).Str("image", scorer.TruncateForLog(key)).Msg("discarding unreadable baseline")
		return nil, nil
	}
	return img, nil
}

// restoreImage rebuilds an image from its stored meta and count buckets.
func (w *worker) restoreImage(key string, meta []byte, buckets []scorer.BaselineBucket, since time.Time) (*image, error) {
	img := w.newImage(key, w.deps.Now())
	if len(meta) > 0 {
		var m imageMeta
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, fmt.Errorf("decode meta: %w", err)
		}
		if m.Version != imageMetaVersion && m.Version != 1 {
			return nil, fmt.Errorf("meta version %d, want %d", m.Version, imageMetaVersion)
		}
		if m.Version == 1 {
			m.Symbols = symbol.ModeType
		}
		if m.Symbols != img.symbols {
			// Counts of another symbol language (an upgrade, or a changed
			// symbols config) would make every event look new: learn
			// afresh, and never load the old buckets again.
			w.log.Info().Str("image", scorer.TruncateForLog(key)).Str("stored", m.Symbols).Str("current", img.symbols).
				Msg("baseline learned with other symbols, learning afresh")
			img.symbolsSince, img.dirty = img.since, true
			w.met.expired.WithLabelValues("symbols_changed").Inc()
			return img, nil
		}
		img.symbolsSince = m.SymbolsSince
		img.state = m.State
		img.threshold, img.endThreshold = storedThreshold(m.Threshold), storedThreshold(m.EndThreshold)
		img.since, img.graduated, img.lastSeen, img.inherited = m.Since, m.Graduated, m.LastSeen, m.Inherited
		img.conv, img.win, img.end, img.blockRates = m.Convergence, m.Win, m.End, m.BlockRates
		if img.state != scorer.StateMonitoring {
			img.state = scorer.StateLearning
			img.threshold, img.endThreshold = math.Inf(1), math.Inf(1)
		} else {
			img.threshold = onlineThreshold(w.cfg, img.threshold)
		}
	}
	for _, b := range buckets {
		if b.Bucket.Before(w.cfg.bucketStart(img.symbolsSince)) {
			continue
		}
		if err := applyCounts(img.model, b.Counts, +1); err != nil {
			if errors.Is(err, markov.ErrOrderMismatch) {
				// Counted at another order (the order changed): of no use
				// to this model, and gone once the horizon passes it.
				w.log.Info().Str("image", scorer.TruncateForLog(key)).Str("bucket", b.Bucket.Format(time.RFC3339)).
					Msg("skipping baseline bucket of another model order")
				continue
			}
			return nil, fmt.Errorf("bucket %s: %w", b.Bucket.Format(time.RFC3339), err)
		}
	}
	img.oldestBucket = since
	w.expireThin(img, "load")
	return img, nil
}

// inherit starts a new image version from its predecessor's stored counts
// (same repository, another tag or digest), marked as inherited. It still
// learns until its own stream has converged, which is quick when the new
// version behaves like the old one.
func (w *worker) inherit(img *image, now time.Time) {
	repo := scorer.ImageRepository(img.key)
	if repo == "" || w.deps.Baselines == nil {
		return
	}
	prev, ok := w.p.repos.Swap(repo, img.key)
	if !ok || prev.(string) == img.key {
		return
	}
	pred := prev.(string)
	buckets, err := w.deps.Baselines.ImageBuckets(pred, w.cfg.horizonStart(now), now.Add(w.cfg.BucketSize))
	if err != nil || len(buckets) == 0 {
		return
	}
	var copies []scorer.BaselineDelta
	for _, b := range buckets {
		if err := applyCounts(img.model, b.Counts, +1); err != nil {
			w.log.Warn().Err(err).Str("image", scorer.TruncateForLog(img.key)).Str("from", scorer.TruncateForLog(pred)).Msg("inherit baseline")
			return
		}
		copies = append(copies, scorer.BaselineDelta{Image: img.key, Bucket: b.Bucket, Counts: b.Counts})
	}
	img.inherited = pred
	copies[len(copies)-1].Meta = img.meta()
	if err := w.deps.Baselines.PutDeltas(copies); err != nil {
		w.log.Warn().Err(err).Str("image", scorer.TruncateForLog(img.key)).Msg("store inherited baseline")
	}
}
