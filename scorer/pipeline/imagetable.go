package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/falco-scorer/falco-scorer/scorer"
	"github.com/falco-scorer/falco-scorer/scorer/markov"
	"github.com/falco-scorer/falco-scorer/scorer/symbol"
)

// loadRetryInterval is how long a stand-in waits before the stored
// baseline is read again.
const loadRetryInterval = 30 * time.Second

func (w *worker) modelConfig() markov.Config {
	mc := markov.DefaultConfig()
	mc.Order = w.cfg.Order
	mc.VocabSize = w.cfg.MaxVocabulary
	return mc
}

func (w *worker) newImage(key string, now time.Time) *image {
	key = strings.Clone(key) // long-lived: must not pin the event's raw JSON
	m, err := markov.New(w.modelConfig())
	if err != nil {
		panic(fmt.Sprintf("markov config validated at start: %v", err)) // unreachable: Config.Validate checked it
	}
	return &image{
		key: key, model: m, conv: newConvergence(w.cfg), state: scorer.StateLearning, since: now, lastSeen: now,
		symbols:      w.symbolsID,
		oldestBucket: w.cfg.horizonStart(now), windowLen: w.cfg.Window, windowWarm: w.cfg.WindowWarmup,
		cusumK: w.cfg.cusumAllowance(), cusumCap: w.cfg.CusumCap,
		threshold: math.Inf(1), endThreshold: math.Inf(1),
		needWin: w.cfg.calibrationSamples(), needEnd: uint64(math.Ceil(1 / w.cfg.EndAlertRate)),
	}
}

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
		img.learnFrom = m.LearningFrom
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

// expireThin puts a monitoring image back to learning when the rolling
// horizon left its model fewer events than an image learns before it may
// graduate (Config.graduationFloor): such a model scores everything as
// rare (or, with a high threshold, nothing), so neither its state nor its
// thresholds mean anything any more. It reports whether it did. The caller
// keeps the state gauge right.
func (w *worker) expireThin(img *image, reason string) bool {
	floor := w.cfg.graduationFloor()
	events := img.model.Events()
	if img.learning() || events >= floor {
		return false
	}
	img.relearn(w.deps.Now(), w.cfg)
	w.met.expired.WithLabelValues(reason).Inc()
	w.log.Info().Str("image", scorer.TruncateForLog(img.key)).Str("reason", reason).Uint64("events", events).
		Uint64("floor", floor).Msg("baseline expired, back to learning")
	return true
}
