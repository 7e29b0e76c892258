// Package sinkstest holds test helpers for the sinks packages and the
// service's tests: an in-memory scorer.Outbox, deterministic sample alerts,
// and a Receiver that stands in for an HTTP destination. It is imported
// only by tests.
//
// Concurrency: Outbox and Receiver are safe for concurrent use.
package sinkstest
