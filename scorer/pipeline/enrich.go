package pipeline

import (
	"strings"
	"sync"

	"github.com/falco-scorer/falco-scorer/scorer"
)

// imageCache remembers container id → image so events whose rule output
// lacks image fields still land in the right baseline. Bounded: when full it
// is cleared, which only costs a few events keyed by container id.
type imageCache struct {
	mu  sync.RWMutex
	m   map[string]scorer.Subject
	max int
}

func newImageCache(max int) *imageCache {
	return &imageCache{m: make(map[string]scorer.Subject), max: max}
}

func (c *imageCache) get(id string) (scorer.Subject, bool) {
	c.mu.RLock()
	s, ok := c.m[id]
	c.mu.RUnlock()
	return s, ok
}

func (c *imageCache) put(id string, s scorer.Subject) {
	// Copies: the strings of a decoded event point into its raw JSON,
	// which the cache must not keep alive.
	id = strings.Clone(id)
	s = scorer.Subject{Image: strings.Clone(s.Image), ImageSource: s.ImageSource, Namespace: strings.Clone(s.Namespace), Pod: strings.Clone(s.Pod)}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[id] = s
	c.mu.Unlock()
}

// enrich derives the Subject of an event: its image key, container,
// Kubernetes context and process. A missing image falls back to the
// container-id cache, then to the container id itself (ImageSource
// "container"), so every event has a usable key.
func enrich(ev *scorer.Event, mode string, cache *imageCache) scorer.Subject {
	s := scorer.Subject{
		ContainerID: ev.Field(scorer.FieldContainerID...),
		Container:   ev.Field(scorer.FieldContainerName...),
		Namespace:   ev.Field(scorer.FieldNamespace...),
		Pod:         ev.Field(scorer.FieldPod...),
		Process:     ev.Field(scorer.FieldProcName...),
		Parent:      ev.Field(scorer.FieldParentName...),
		Hostname:    ev.Hostname,
	}
	s.PID, _ = ev.IntField(scorer.FieldProcPID...)
	s.Image, s.ImageSource = scorer.ImageKey(ev, mode)
	if s.Image == "" && s.ContainerID != "" && cache != nil {
		if c, ok := cache.get(s.ContainerID); ok {
			s.Image, s.ImageSource = c.Image, "cache"
			if s.Namespace == "" {
				s.Namespace = c.Namespace
			}
			if s.Pod == "" {
				s.Pod = c.Pod
			}
		}
	} else if s.Image != "" && s.ContainerID != "" && cache != nil {
		c, ok := cache.get(s.ContainerID)
		switch {
		case ok && c.ImageSource == "digest" && s.ImageSource == "tag" && sameRepository(c.Image, s.Image):
			// A container's image never changes. Stock Falco rules print
			// repository and tag but no digest, the shipped observation
			// rules print the digest: the container's Falco alerts must
			// land in the baseline (and the worker) of its observations.
			s.Image, s.ImageSource = c.Image, "digest"
		case !ok || c.Image != s.Image || (c.Pod == "" && s.Pod != ""):
			cache.put(s.ContainerID, scorer.Subject{Image: s.Image, ImageSource: s.ImageSource, Namespace: s.Namespace, Pod: s.Pod})
		}
	}
	if s.Image == "" {
		switch {
		case s.ContainerID != "" && s.ContainerID != "host":
			s.Image, s.ImageSource = "container:"+s.ContainerID, "container"
		default:
			s.Image, s.ImageSource = "host", "host"
		}
	}
	return s
}

// sameRepository reports whether a digest key (repo@sha256:…) and a tag
// key (repo:tag) name the same repository.
func sameRepository(digestKey, tagKey string) bool {
	return scorer.ImageRepository(digestKey) == scorer.ImageRepository(tagKey)
}
