// Package scorer holds falco-scorer's domain: the Event decoded from Falco,
// the Alert forwarded to sinks, Falco priorities, and the pipeline that turns
// one into the other (enrich, sequence state, score, verdict, learn, rules).
//
// It declares the interfaces it needs from infrastructure (Journal, Outbox,
// Baselines, Acceptor) and imports none: store, sinks and scorer/source
// depend on scorer, never the reverse. The model itself lives in
// scorer/markov, which is pure.
//
// Concurrency: Event and Alert are values; the pipeline shards work by image
// so that an image's model and its sequences are owned by one worker.
package scorer
