// Package markov is falco-scorer's model of normal system-call order: a
// variable-order Markov chain over small integer Symbols with interpolated
// Witten-Bell smoothing down to a uniform distribution over the whole
// (bounded) vocabulary, so every event, even an unseen or out-of-vocabulary
// one, gets a finite surprise.
//
// What it provides, for the pipeline and for eval alike:
//   - Model: Intern/Lookup names, Learn one transition, Score one event
//     (surprise, context entropy, longest counted match; a walk down a
//     context tree, O(order) hash-table lookups at most, no allocation),
//     exact add/subtract of counts through Delta (TakeDelta, Apply,
//     MergeDeltas for compaction), and a deterministic, versioned binary
//     encoding of Model and Delta. Learn and Score do not allocate once the
//     counts exist; Stats and Events are O(1); TopTransitions and Explain
//     walk and allocate (reports and alerts only).
//   - History: the per-sequence last MaxOrder-1 symbols (32 bytes).
//   - Sequence: the end-of-sequence score, the mean per-event surprise,
//     and the covering rate (share of events whose full-length n-gram was
//     never counted, Step.Novel); Window: the online score, mean surprise
//     of the last events; Alarm: rising edge with hysteresis.
//   - Threshold and Convergence for calibration and graduation; Explain for
//     the least likely transitions of a window; Stats for maturity.
//
// It must not do I/O, read clocks, log, or keep package-level mutable state:
// time and data come in as arguments, so results are deterministic.
//
// Concurrency: Model guards its counts with a sync.RWMutex (Score,
// Probability, Explain, Stats and MarshalBinary read; Learn, Apply, Intern
// and TakeDelta write), so it is safe to share. History, Sequence, Window,
// Alarm and Convergence are per-sequence or per-image state without locks:
// one goroutine owns each.
package markov
