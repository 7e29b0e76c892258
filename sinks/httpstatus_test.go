package sinks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/sinks"
)

func TestClassifyHTTP(t *testing.T) {
	tests := []struct {
		code      int
		want      sinks.HTTPClass
		reason    string
		permanent bool
	}{
		{200, sinks.HTTPDelivered, "", false},
		{204, sinks.HTTPDelivered, "", false},
		{101, sinks.HTTPOther, "http_other", false},
		{302, sinks.HTTPOther, "http_other", false},
		{429, sinks.HTTPRateLimited, "http_429", false},
		{500, sinks.HTTPServer, "http_5xx", false},
		{503, sinks.HTTPServer, "http_5xx", false},
		{400, sinks.HTTPPayload, "payload", true},
		{413, sinks.HTTPPayload, "payload", true},
		{415, sinks.HTTPPayload, "payload", true},
		{422, sinks.HTTPPayload, "payload", true},
		{401, sinks.HTTPAuth, "auth", false},
		{403, sinks.HTTPAuth, "auth", false},
		{404, sinks.HTTPConfig, "config", false},
		{405, sinks.HTTPConfig, "config", false},
		{410, sinks.HTTPConfig, "config", false},
		{408, sinks.HTTPTimeout, "timeout", false},
		{425, sinks.HTTP4xx, "http_4xx", false},
		{418, sinks.HTTP4xx, "http_4xx", false},
	}
	for _, tt := range tests {
		c := sinks.ClassifyHTTP(tt.code)
		if c != tt.want {
			t.Errorf("ClassifyHTTP(%d) = %d, want %d", tt.code, c, tt.want)
		}
		if c.Reason() != tt.reason {
			t.Errorf("ClassifyHTTP(%d).Reason() = %q, want %q", tt.code, c.Reason(), tt.reason)
		}
		f := c.Failure(errors.New("answered"))
		if f.Permanent != tt.permanent {
			t.Errorf("ClassifyHTTP(%d).Failure(err).Permanent = %v, want %v", tt.code, f.Permanent, tt.permanent)
		}
		if tt.reason != "" && f.Reason != tt.reason {
			t.Errorf("ClassifyHTTP(%d).Failure(err).Reason = %q, want %q", tt.code, f.Reason, tt.reason)
		}
		if f.Err == nil || f.Err.Error() != "answered" || f.RetryAfter != 0 {
			t.Errorf("ClassifyHTTP(%d).Failure(err) = %v, want the error given and no Retry-After", tt.code, f)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 0 ", 0, true},
		{"-5", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"Mon, 07 Dec 2026 09:01:30 GMT", 90 * time.Second, true},
		{"Mon, 07 Dec 2026 08:59:00 GMT", 0, true}, // in the past
	}
	for _, tt := range tests {
		d, ok := sinks.ParseRetryAfter(tt.h, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v, want %v, %v", tt.h, d, ok, tt.want, tt.ok)
		}
	}
}
