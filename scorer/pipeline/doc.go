// Package pipeline turns accepted events into alerts: it journals them
// (Accept), enriches each (image key, container, Kubernetes context,
// process), keeps the state of each syscall sequence, scores it against the
// image's Markov model (scorer/markov) over symbols (scorer/symbol), takes
// the verdict, learns what is normal, applies the routing rules and commits
// the alerts to the outbox together with the journal entries they came from.
//
// It imports scorer for the vocabulary and the ports and no infrastructure:
// the journal, outbox and baselines come in as scorer.Journal and
// scorer.Baselines (package store implements them), the rules as a
// scorer.Decider, the metrics registry and the logger from main.
//
// Concurrency: work is sharded by image across workers. One image's model
// and its sequences belong to one worker goroutine, so scoring takes no
// locks; the only shared state is the container→image cache. Accept and
// AcceptUnjournaled are safe for concurrent use; Replace runs a change of a
// stored baseline on the worker that owns the image.
//
// Where things are: pipeline.go (Accept, Run, journal replay, Replace),
// worker.go (one shard's loop: process, alert, commit, maintain, flush),
// enrich.go (the Subject of an event), image.go (one image's baseline and
// its learning), imagetable.go (a worker's images: creation, lookup, load,
// eviction, inheritance, expiry), sequence.go (one syscall trace: step,
// delayed learning), calibrate.go (thresholds from held-out scores),
// stored.go (what the store keeps of an image: meta and count deltas),
// config.go, symbolize.go.
package pipeline
