package sinks

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

const redacted = "<redacted>"

// Redact returns err with every secret removed from its text. A *url.Error
// (which prints the whole request URL) is reduced to scheme://host; then
// each secret, and for a secret that is a URL its path, query and long path
// segments, is replaced by "<redacted>". When text had to be replaced the
// result no longer wraps err, so nothing can print the original. (What the
// dispatcher does with a failure is in the sink's Failure, not in err, so
// nothing of it is lost.)
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = fmt.Errorf("%s %s: %w", ue.Op, RedactURL(ue.URL), ue.Err)
	}
	msg := err.Error()
	clean := RedactText(msg, secrets...)
	if clean == msg {
		return err
	}
	return errors.New(clean)
}

// RedactText replaces every secret (and the sensitive parts of secret URLs)
// in text.
func RedactText(text string, secrets ...string) string {
	var all []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		all = append(all, s)
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			all = append(all, u.RawQuery, u.EscapedPath(), u.Path)
			for _, seg := range strings.Split(u.Path, "/") {
				if len(seg) >= 8 {
					all = append(all, seg)
				}
			}
			if u.User != nil {
				all = append(all, u.User.String())
			}
		}
	}
	for _, s := range all {
		if len(s) > 1 {
			text = strings.ReplaceAll(text, s, redacted)
		}
	}
	return text
}

// RedactURL keeps the scheme and host of raw, which help debugging and are
// not secret, and hides the rest.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	return u.Scheme + "://" + u.Host + "/" + redacted
}

// CheckHTTPURL reports whether s is an http(s) URL with a host. Its error
// never echoes s: a webhook URL is a credential.
func CheckHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("not an http(s) URL")
	}
	return nil
}
