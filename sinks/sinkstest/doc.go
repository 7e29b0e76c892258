// Package sinkstest holds test helpers for the sinks packages: an in-memory
// scorer.Outbox and deterministic sample alerts. It is imported only by tests.
//
// Concurrency: Outbox is safe for concurrent use.
package sinkstest
