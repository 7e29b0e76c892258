// Package sinks delivers alerts from the durable outbox to their
// destinations, at least once.
//
// A Sink knows one destination (Kafka, Slack, stdout, a webhook) and sends a
// batch of alerts once, reporting what the destination confirmed. A
// Dispatcher, one per sink, drains that sink's entries of a scorer.Outbox in
// sequence order, sends them, acknowledges what was delivered and retries
// the rest with jittered exponential backoff bounded in time; entries that
// cannot be delivered (a permanent error, or the retry time is used up) move
// to the dead-letter set with the reason. For sinks that forward the stored
// payload (HeaderOnly: Kafka, stdout) the Dispatcher decodes only each
// alert's header, not the whole alert.
//
// What it must not do: retry inside a Sink (only the Dispatcher retries),
// acknowledge an entry before the destination confirmed it, hold more than
// one batch per sink in memory, or log a secret (sinks redact URLs and
// credentials from their errors).
//
// Concurrency: a Dispatcher's Run is one goroutine that calls its Sink's Send
// serially, so per-sink order (and therefore per-key order in Kafka) is kept.
// Wake is safe from any goroutine. A Sink need not be safe for concurrent
// Send calls. Metrics may be shared by every Dispatcher.
package sinks
