package pipeline

import (
	"testing"
	"unsafe"

	"github.com/falco-scorer/falco-scorer/scorer"
)

func TestEnrichFallsBackToCacheThenContainer(t *testing.T) {
	cache := newImageCache(10)
	full := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c1", "container.image.repository": "nginx", "container.image.tag": "1", "k8s.ns.name": "shop"})}
	if s := enrich(full, scorer.ImageKeyDigest, cache); s.Image != "nginx:1" {
		t.Fatalf("enrich(full).Image = %q, want nginx:1", s.Image)
	}
	bare := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c1", "proc.pid": "7"})}
	s := enrich(bare, scorer.ImageKeyDigest, cache)
	if s.Image != "nginx:1" || s.ImageSource != "cache" || s.Namespace != "shop" || s.PID != 7 {
		t.Errorf("enrich(bare) = %+v, want image from cache", s)
	}
	unknown := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c2"})}
	if s := enrich(unknown, scorer.ImageKeyDigest, cache); s.Image != "container:c2" || s.ImageSource != "container" {
		t.Errorf("enrich(unknown) = %+v, want container fallback", s)
	}
	host := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "host"})}
	if s := enrich(host, scorer.ImageKeyDigest, cache); s.Image != "host" {
		t.Errorf("enrich(host) = %+v, want host", s)
	}
}

// TestEnrichKeepsContainerOnItsDigestKey: a container's Falco alerts from
// stock rules (repository and tag, no digest) land in the baseline of its
// observations (digest key), whichever came first once the digest is known;
// a digest is never downgraded to a tag key.
func TestEnrichKeepsContainerOnItsDigestKey(t *testing.T) {
	cache := newImageCache(10)
	obs := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c1", "container.image.repository": "nginx",
		"container.image.tag": "1", "container.image.digest": "sha256:feed"})}
	alert := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c1", "container.image.repository": "nginx",
		"container.image.tag": "1"})}
	if s := enrich(obs, scorer.ImageKeyDigest, cache); s.Image != "nginx@sha256:feed" {
		t.Fatalf("observation key = %q, want nginx@sha256:feed", s.Image)
	}
	if s := enrich(alert, scorer.ImageKeyDigest, cache); s.Image != "nginx@sha256:feed" || s.ImageSource != "digest" {
		t.Errorf("Falco alert without digest = %q (%s), want the container's digest key", s.Image, s.ImageSource)
	}
	if s := enrich(obs, scorer.ImageKeyDigest, cache); s.Image != "nginx@sha256:feed" {
		t.Errorf("observation after the alert = %q, want the digest key", s.Image)
	}
	// Another repository in the same container id (not expected) keeps its own key.
	other := &scorer.Event{Fields: scorer.FieldsOf(map[string]string{"container.id": "c1", "container.image.repository": "redis", "container.image.tag": "7"})}
	if s := enrich(other, scorer.ImageKeyDigest, cache); s.Image != "redis:7" {
		t.Errorf("other repository = %q, want redis:7", s.Image)
	}
	// Tag mode ignores digests altogether.
	if s := enrich(alert, scorer.ImageKeyTag, newImageCache(10)); s.Image != "nginx:1" {
		t.Errorf("tag mode = %q, want nginx:1", s.Image)
	}
}

// TestHeaderDetachedPointsIntoNoEvent: a detached header shares no bytes
// with the event's raw JSON, whatever the image key (found in review: the
// container id, and the image in repository mode, pinned the event).
func TestHeaderDetachedPointsIntoNoEvent(t *testing.T) {
	raw := `{"time":"2024-01-01T00:00:00Z","priority":"Warning","rule":"r","output":"o","output_fields":` +
		`{"container.id":"abcdef123456","container.image.repository":"nginx","container.image.tag":"1","proc.pid":1}}`
	within := func(s string, b []byte) bool {
		if s == "" || len(b) == 0 {
			return false
		}
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(&b[0]))
		return p >= lo && p < lo+uintptr(len(b))
	}
	for _, mode := range []string{scorer.ImageKeyDigest, scorer.ImageKeyTag, scorer.ImageKeyRepository} {
		ev, err := scorer.DecodeJSON([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		a := &scorer.Alert{ID: "x", Kind: scorer.KindFalco, Event: ev, Subject: enrich(&ev, mode, nil)}
		h := a.Header().Detached()
		if h != a.Header() {
			t.Errorf("%s: Detached() = %+v, want the same values as %+v", mode, h, a.Header())
		}
		for name, s := range map[string]string{"ID": h.ID, "Kind": h.Kind, "Rule": h.Rule, "Image": h.Image, "ContainerID": h.ContainerID, "Band": h.Band} {
			if within(s, ev.Raw) {
				t.Errorf("%s: header %s = %q points into the event's raw JSON", mode, name, s)
			}
		}
	}
}
