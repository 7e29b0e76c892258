package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/falco-scorer/falco-scorer/sinks"
)

func TestResult(t *testing.T) {
	base := errors.New("boom")
	until := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	const (
		D = sinks.StatusDelivered
		H = sinks.StatusHeld
		F = sinks.StatusDeferred
		P = sinks.StatusPermanent
		R = sinks.StatusRetry
	)
	perItem := func(build func(r *sinks.Result)) sinks.Result {
		r := sinks.Delivered(3)
		build(&r)
		return r
	}
	tests := []struct {
		name       string
		r          sinks.Result
		want       []sinks.Status // after the dispatcher's check
		decision   sinks.Status
		reason     string // "" with no cause
		permanent  bool
		retryAfter time.Duration
		perItem    bool
	}{
		{"delivered", sinks.Delivered(3), []sinks.Status{D, D, D}, D, "", false, 0, false},
		{"transient", sinks.Failed(3, sinks.Transient("http_5xx", base)), []sinks.Status{R, R, R}, R, "http_5xx", false, 0, false},
		{"permanent", sinks.Failed(3, sinks.Rejected("payload", base)), []sinks.Status{P, P, P}, P, "payload", true, 0, false},
		{"retry after", sinks.Failed(3, sinks.Transient("http_429", base).After(3*time.Second)), []sinks.Status{R, R, R}, R, "http_429", false, 3 * time.Second, false},
		{"partial", perItem(func(r *sinks.Result) { r.Fail(sinks.Transient("", base), 1, 7, -1) }), []sinks.Status{D, R, D}, R, "error", false, 0, true},
		{"partial permanent", perItem(func(r *sinks.Result) { r.Fail(sinks.Rejected("", base), 2) }), []sinks.Status{D, D, P}, P, "error", true, 0, true},
		{"held, failed wins", perItem(func(r *sinks.Result) { r.Hold(until, 0, 2); r.Fail(sinks.Transient("", base), 0) }), []sinks.Status{R, D, H}, R, "error", false, 0, true},
		{"failed, then held: failed wins", perItem(func(r *sinks.Result) { r.Fail(sinks.Transient("", base), 0); r.Hold(until, 0, 2) }), []sinks.Status{R, D, H}, R, "error", false, 0, true},
		{"held only", perItem(func(r *sinks.Result) { r.Hold(until, 0, 1, 2) }), []sinks.Status{H, H, H}, D, "", false, 0, true},
		{"deferred after a delivery", perItem(func(r *sinks.Result) { r.Defer(1, 2) }), []sinks.Status{D, F, F}, F, "error", false, 0, true},
		{"deferred, nothing delivered", perItem(func(r *sinks.Result) { r.Defer(0, 1, 2) }), []sinks.Status{R, R, R}, R, "error", false, 0, true},
		{"wrong length", sinks.Delivered(2), []sinks.Status{R, R, R}, R, "sink_bug", false, 0, false},
		{"failure without a cause", sinks.Failed(3, nil), []sinks.Status{R, R, R}, R, "error", false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sinks.Checked(tt.r, 3)
			if !slices.Equal(r.Status, tt.want) {
				t.Errorf("Checked(%v).Status = %v, want %v", tt.r, r.Status, tt.want)
			}
			if got := r.Decision(); got != tt.decision {
				t.Errorf("Checked(%v).Decision() = %v, want %v", tt.r, got, tt.decision)
			}
			if !causeIs(r.Cause, tt.reason, tt.permanent, tt.retryAfter) {
				t.Errorf("Checked(%v).Cause = %v; want reason %q (\"\": none), permanent %v, retry after %s", tt.r, r.Cause, tt.reason, tt.permanent, tt.retryAfter)
			}
			if r.PerItem != tt.perItem {
				t.Errorf("Checked(%v).PerItem = %v, want %v", tt.r, r.PerItem, tt.perItem)
			}
			if got := r.OK(); got != (tt.decision == D && r.Count(H) == 0) {
				t.Errorf("Checked(%v).OK() = %v", tt.r, got)
			}
		})
	}
}

// causeIs reports whether f has reason, permanent and retryAfter and an
// error; reason "" wants no cause at all.
func causeIs(f *sinks.Failure, reason string, permanent bool, retryAfter time.Duration) bool {
	if reason == "" {
		return f == nil
	}
	return f != nil && f.Err != nil && f.Reason == reason && f.Permanent == permanent && f.RetryAfter == retryAfter
}

// TestResultItems: the held and failed items of a batch, the earliest
// hold, and the cause as given.
func TestResultItems(t *testing.T) {
	base := errors.New("boom")
	until := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	r := sinks.Delivered(3)
	r.Fail(sinks.Transient("", base), 1)
	r.Hold(until, 2)
	r.Hold(until.Add(time.Hour), 0)
	if !r.HeldUntil.Equal(until) {
		t.Errorf("HeldUntil = %s, want the earliest %s", r.HeldUntil, until)
	}
	if r.Cause == nil || r.Cause.Err != base {
		t.Errorf("Cause = %v, want the error given", r.Cause)
	}
	batch := []sinks.Item{{Seq: 1}, {Seq: 2}, {Seq: 3}}
	if got := r.Items(batch, sinks.StatusHeld); len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 {
		t.Errorf("Items(held) = %v, want the items of seq 1 and 3", got)
	}
	if got := r.FailedItems(batch); len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("FailedItems() = %v, want the item of seq 2", got)
	}
	if got := r.Decision(); got != sinks.StatusRetry {
		t.Errorf("Decision() = %v, want StatusRetry", got)
	}
}

// TestFailureReason: a sink that gives no reason gets the one its error's
// kind gives, through any wrapping.
func TestFailureReason(t *testing.T) {
	tests := []struct {
		name string
		f    *sinks.Failure
		want string
	}{
		{"plain", sinks.Transient("", errors.New("boom")), "error"},
		{"given", sinks.Rejected("http_4xx", errors.New("boom")), "http_4xx"},
		{"wrapped deadline", sinks.Transient("", fmt.Errorf("post: %w", context.DeadlineExceeded)), "timeout"},
		{"wrapped cancel", sinks.Transient("", fmt.Errorf("post: %w", context.Canceled)), "canceled"},
	}
	for _, tt := range tests {
		if tt.f.Reason != tt.want {
			t.Errorf("%s: Reason = %q, want %q", tt.name, tt.f.Reason, tt.want)
		}
	}
}
