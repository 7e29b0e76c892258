// Package webhook is the generic HTTP sink: it POSTs each alert as Falco's
// own JSON (the original event with the escalated priority and scorer.*
// keys added to output_fields), so falcosidekick or falco-talon can sit
// downstream unchanged.
//
// What it must not do: retry (the dispatcher does), change the event beyond
// priority and the scorer.* output fields, or let the URL or the bearer
// token reach a log or an error.
//
// Concurrency: one Send at a time (the dispatcher's goroutine).
package webhook
