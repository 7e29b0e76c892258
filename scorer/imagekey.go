package scorer

import "strings"

// Image-key modes: what identifies "the same image" for a baseline.
const (
	ImageKeyDigest     = "digest"     // digest when Falco gives one, else repository:tag (default)
	ImageKeyTag        = "tag"        // repository:tag, ignoring digests
	ImageKeyRepository = "repository" // repository only: all versions share a baseline
)

// ImageRepository strips the tag or digest from an image key ("repo:tag",
// "repo@sha256:…"; a registry port is not a tag). It is "" for keys that
// are not images: "host" and container fallbacks.
func ImageRepository(key string) string {
	if key == "host" || strings.HasPrefix(key, "container:") {
		return ""
	}
	repo, _, _ := splitImageRef(key)
	return repo
}

// ImageKey picks the baseline identity from the event's image fields, as
// the image-key mode (ImageKeyDigest, ImageKeyTag, ImageKeyRepository) says.
func ImageKey(ev *Event, mode string) (key, source string) {
	repo := ev.Field(FieldImageRepository...)
	tag := ev.Field(FieldImageTag...)
	digest := ev.Field(FieldImageDigest...)
	if repo == "" {
		// Older rules may only print container.image ("repo:tag", or
		// "repo@sha256:…" for an image pulled by digest).
		if full := ev.Field(FieldImage...); full != "" {
			var d string
			repo, tag, d = splitImageRef(full)
			if digest == "" {
				digest = d
			}
		}
	}
	if repo == "" {
		return "", ""
	}
	switch mode {
	case ImageKeyRepository:
		return repo, "repository"
	case ImageKeyTag:
	default:
		if digest != "" {
			return repo + "@" + digest, "digest"
		}
	}
	if tag == "" {
		tag = "latest"
	}
	return repo + ":" + tag, "tag"
}

// splitImageRef splits an image reference "repo[:tag][@digest]" without
// mistaking a registry port for a tag.
func splitImageRef(full string) (repo, tag, digest string) {
	if i := strings.Index(full, "@"); i >= 0 {
		full, digest = full[:i], full[i+1:]
	}
	slash := strings.LastIndex(full, "/")
	if i := strings.LastIndex(full, ":"); i > slash {
		return full[:i], full[i+1:], digest
	}
	return full, "", digest
}
