package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/falco-scorer/falco-scorer/sinks"
)

func TestRedact(t *testing.T) {
	const hook = "https://hooks.example.com/services/T1/B2/SECRETSECRET?token=qq"
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://127.0.0.1:1/services/T1/B2/SECRETSECRET?token=qq", nil)
	_, doErr := http.DefaultClient.Do(req) // connection refused: a *url.Error with the URL
	tests := []struct {
		name string
		err  error
		keep string
	}{
		{"url error", doErr, "127.0.0.1:1"},
		{"echoed path", errors.New("proxy said /services/T1/B2/SECRETSECRET"), "proxy said"},
		{"echoed segment", errors.New("bad hook SECRETSECRET"), "bad hook"},
		{"token", fmt.Errorf("post: %w", errors.New("auth Bearer tok-123456 refused")), "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sinks.Redact(tt.err, hook, "tok-123456")
			for _, leak := range []string{"SECRETSECRET", "token=qq", "tok-123456"} {
				if strings.Contains(got.Error(), leak) {
					t.Errorf("Redact(%v) = %q, still contains %q", tt.err, got, leak)
				}
			}
			if !strings.Contains(got.Error(), tt.keep) {
				t.Errorf("Redact(%v) = %q, want it to keep %q", tt.err, got, tt.keep)
			}
		})
	}
}

func TestCheckHTTPURL(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"https://hooks.example.com/services/SECRET", true},
		{"http://127.0.0.1:8080/hook", true},
		{"ftp://host/SECRET", false},
		{"hooks.example.com/SECRET", false},
		{"https:///SECRET", false},
		{"%zzSECRET", false},
	} {
		err := sinks.CheckHTTPURL(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckHTTPURL(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("CheckHTTPURL(%q) = %q, echoes the URL", tt.in, err)
		}
	}
}
