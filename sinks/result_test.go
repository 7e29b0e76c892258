package sinks_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/sinks"
)

func TestResultOf(t *testing.T) {
	base := errors.New("boom")
	until := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	const (
		D = sinks.StatusDelivered
		H = sinks.StatusHeld
		F = sinks.StatusDeferred
		P = sinks.StatusPermanent
		R = sinks.StatusRetry
	)
	tests := []struct {
		name       string
		err        error
		want       []sinks.Status
		reason     string
		retryAfter time.Duration
		perItem    bool
	}{
		{"delivered", nil, []sinks.Status{D, D, D}, "", 0, false},
		{"transient", sinks.WithReason("http_5xx", base), []sinks.Status{R, R, R}, "http_5xx", 0, false},
		{"permanent", sinks.Permanent(sinks.WithReason("payload", base)), []sinks.Status{P, P, P}, "payload", 0, false},
		{"retry after", sinks.WithReason("http_429", sinks.RetryAfter(base, 3*time.Second)), []sinks.Status{R, R, R}, "http_429", 3 * time.Second, false},
		{"partial", &sinks.PartialError{Failed: []int{1, 7, -1}, Err: base}, []sinks.Status{D, R, D}, "error", 0, true},
		{"partial permanent", &sinks.PartialError{Failed: []int{2}, Err: sinks.Permanent(base)}, []sinks.Status{D, D, P}, "error", 0, true},
		{"held, failed wins", &sinks.PartialError{Failed: []int{0}, Err: base, Held: []int{0, 2}, HeldUntil: until}, []sinks.Status{R, D, H}, "error", 0, true},
		{"held only", &sinks.PartialError{Held: []int{0, 1, 2}, HeldUntil: until}, []sinks.Status{H, H, H}, "error", 0, true},
		{"deferred after a delivery", &sinks.PartialError{Failed: []int{1, 2}, Err: sinks.ErrDeferred}, []sinks.Status{D, F, F}, "error", 0, true},
		{"deferred, nothing delivered", &sinks.PartialError{Failed: []int{0, 1, 2}, Err: sinks.ErrDeferred}, []sinks.Status{R, R, R}, "error", 0, true},
		{"wrapped partial", fmt.Errorf("send: %w", &sinks.PartialError{Failed: []int{0}, Err: base}), []sinks.Status{R, D, D}, "error", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sinks.ResultOf(3, tt.err)
			if !slices.Equal(r.Status, tt.want) {
				t.Errorf("ResultOf(3, %v).Status = %v, want %v", tt.err, r.Status, tt.want)
			}
			if r.Err != tt.err {
				t.Errorf("ResultOf(3, %v).Err = %v, want the error given", tt.err, r.Err)
			}
			if r.Reason != tt.reason || r.RetryAfter != tt.retryAfter || r.PerItem != tt.perItem {
				t.Errorf("ResultOf(3, %v) = reason %q, retry after %s, per item %v; want %q, %s, %v",
					tt.err, r.Reason, r.RetryAfter, r.PerItem, tt.reason, tt.retryAfter, tt.perItem)
			}
		})
	}
	r := sinks.ResultOf(3, &sinks.PartialError{Failed: []int{1}, Err: base, Held: []int{2}, HeldUntil: until})
	if !r.HeldUntil.Equal(until) {
		t.Errorf("HeldUntil = %s, want %s", r.HeldUntil, until)
	}
	batch := []sinks.Item{{Seq: 1}, {Seq: 2}, {Seq: 3}}
	if got := r.Items(batch, sinks.StatusHeld); len(got) != 1 || got[0].Seq != 3 {
		t.Errorf("Items(held) = %v, want the item of seq 3", got)
	}
	if got := r.Failure(); got != sinks.StatusRetry {
		t.Errorf("Failure() = %v, want StatusRetry", got)
	}
	if got := sinks.ResultOf(3, nil).Failure(); got != sinks.StatusDelivered {
		t.Errorf("Failure() of a delivered batch = %v, want StatusDelivered", got)
	}
}
