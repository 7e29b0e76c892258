// Package capture measures detection on what Falco actually sends: it
// replays a recorded capture of Falco JSON observations (a learning phase,
// then a test phase of normal traffic and attacks, see scorer/evaluate/lab)
// through the service's own pipeline, observes every scoring decision
// (pipeline.Deps.OnScored), and reports per-process ranking (AUC), detection as
// deployed (the pipeline's own alerts and calibrated thresholds) and at fixed
// false-alarm budgets, incident-level (attack run) detection, per-scenario
// detection and events to first alert, per image and overall.
//
// Beside the sequence scorer it computes, from the same events in the same
// run, a set-membership profile: a process alerts when it emits a symbol the
// image never emitted while learning. That is what learned workload profiles
// (Kubescape, Datadog, NeuVector, Sysdig) do, and what the scorer must beat.
//
// It runs one pipeline per call and holds one record per test-phase process;
// it does no I/O but reading the capture it is given.
package capture
