// Package rules holds the two rule sets falco-scorer ships.
//
// The first is the Falco rules file (FalcoRules): Falco loads it, and it makes
// Falco emit the low-priority observation events, tagged TagObservation, that
// the scorer's sequence model learns from. The package only embeds and
// exposes it; Falco evaluates it.
//
// The second is the scorer's own priority, routing and suppression rules: a
// YAML file decoded strictly into Config (Parse, Load, or Default for the
// built-in defaults). The resulting Engine decides, for every alert, its
// anomaly band, its final priority, the sinks it goes to, and whether it is
// suppressed (by a rule with an expiry and a reason, or as a duplicate of a
// recent alert of the same image, rule and kind).
//
// What it must not do: no I/O besides Load reading its file, no logging (it
// returns errors and counts; the caller logs), no global state. Invalid rules
// fail at Parse with "file:line: reason".
//
// Concurrency: an Engine is immutable after Parse except for its dedup state
// and counters, which are sharded behind mutexes and atomics: Decide is safe
// for concurrent use by the pipeline's workers. Config values are plain data
// and are not safe for concurrent mutation.
package rules
