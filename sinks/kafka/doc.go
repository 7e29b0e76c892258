// Package kafka is the Kafka sink: each alert becomes one record whose value
// is the stored alert JSON (schema falco-scorer.alert.v2, see
// sinks.AlertSchemaJSON), keyed by image (or container, rule) so one
// image's alerts stay ordered in one partition (chosen by murmur2 of the key,
// as Java's default partitioner does), or without a key (none) and spread
// over the partitions, with headers for consumers that route without parsing
// the value.
//
// It is the only package that imports github.com/segmentio/kafka-go.
//
// What it must not do: acknowledge before the broker did (Send writes
// synchronously with the configured required acks), re-marshal the payload,
// retry for longer than one Send (the dispatcher retries), or log the SASL
// password.
//
// Concurrency: Send may be called from one goroutine at a time (the
// dispatcher's); Close may be called concurrently with nothing else.
package kafka
