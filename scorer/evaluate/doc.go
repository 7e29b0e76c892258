// Package evaluate measures the scorer's model on ADFA-LD-layout data: one
// sequence per file (whitespace-separated system-call numbers), attack files
// under attack/<Family_N>/. It trains a markov.Model on the training
// directory, calibrates thresholds from the training data alone (held-out
// folds, as the service holds out part of its learning stream), scores the
// normal and attack sequences with the same per-event, sequence and window
// code the service uses, and computes AUCs, detection rates at fixed
// false-alarm rates and calibration figures (Report, whose JSON is the
// `falco-scorer eval --json` output).
//
// It reads files but has no other side effects: no logging, no metrics, no
// package-level state. Run uses up to GOMAXPROCS goroutines internally and
// returns only when they are done; its result depends only on its inputs.
package evaluate
