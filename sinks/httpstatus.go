package sinks

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPClass is what the status of an HTTP destination's answer says about
// a delivery. Slack and the webhook share it, so that both treat a status
// the same way (as Alertmanager's notify.Retrier does for its receivers):
// 429, 5xx and the 4xx that concern every alert (auth, configuration,
// timeouts) are transient, so fixing the cause delivers the alerts; only
// the answers about this request's body are permanent.
type HTTPClass uint8

// The classes, with the reason label each gives (HTTPClass.Reason).
const (
	HTTPDelivered   HTTPClass = iota // 2xx
	HTTPRateLimited                  // 429 "http_429": wait for Retry-After
	HTTPServer                       // 5xx "http_5xx"
	HTTPPayload                      // 400, 413, 415, 422 "payload": permanent
	HTTPAuth                         // 401, 403 "auth"
	HTTPConfig                       // 404, 405, 410 "config": nothing at that URL
	HTTPTimeout                      // 408 "timeout"
	HTTP4xx                          // another 4xx "http_4xx" (425, ...): says nothing about this alert
	HTTPOther                        // 1xx, 3xx "http_other": the sink decides
)

// ClassifyHTTP returns the class of an HTTP status code.
func ClassifyHTTP(code int) HTTPClass {
	switch {
	case code >= 200 && code < 300:
		return HTTPDelivered
	case code == http.StatusTooManyRequests:
		return HTTPRateLimited
	case code >= 500:
		return HTTPServer
	case code < 400:
		return HTTPOther
	}
	switch code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return HTTPPayload
	case http.StatusUnauthorized, http.StatusForbidden:
		return HTTPAuth
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone:
		return HTTPConfig
	case http.StatusRequestTimeout:
		return HTTPTimeout
	default:
		return HTTP4xx
	}
}

var httpReasons = [...]string{
	HTTPDelivered:   "",
	HTTPRateLimited: "http_429",
	HTTPServer:      "http_5xx",
	HTTPPayload:     "payload",
	HTTPAuth:        "auth",
	HTTPConfig:      "config",
	HTTPTimeout:     "timeout",
	HTTP4xx:         "http_4xx",
	HTTPOther:       "http_other",
}

// Reason returns the class's bounded reason label ("" for HTTPDelivered).
func (c HTTPClass) Reason() string { return httpReasons[c] }

// Permanent reports whether sending the same request again cannot succeed.
func (c HTTPClass) Permanent() bool { return c == HTTPPayload }

// Failure returns err as the Failure this class gives: its reason, and
// permanent when the class is.
func (c HTTPClass) Failure(err error) *Failure {
	if c.Permanent() {
		return Rejected(c.Reason(), err)
	}
	return Transient(c.Reason(), err)
}

// ParseRetryAfter reads a Retry-After header: delay-seconds, or an HTTP
// date taken relative to now (a date in the past is 0). ok is false when h
// is neither; the caller chooses its fallback. The dispatcher bounds the
// delay (a bogus value from a proxy must not stall the sink for hours).
func ParseRetryAfter(h string, now time.Time) (d time.Duration, ok bool) {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
