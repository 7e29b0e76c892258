// Package stdout is the default sink: one alert JSON (the stored payload,
// schema falco-scorer.alert.v2) per line on standard output or any writer.
//
// What it must not do: re-marshal the payload, or interleave lines (one
// Write per batch under a lock).
//
// Concurrency: Send is safe for concurrent use.
package stdout
