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
