// Package scorer holds falco-scorer's vocabulary: the Event decoded from
// Falco and its decoder and encoder, the Alert forwarded to sinks with its
// JSON and header codecs, Falco priorities and field names, image keys, the
// routing Decision, and the ports where the other packages meet (Journal,
// Outbox, Baselines, Acceptor). The pipeline that turns events into alerts
// lives in scorer/pipeline.
//
// It imports only the standard library and declares the interfaces its
// users need from infrastructure: store implements Journal, Outbox and
// Baselines, scorer/source calls an Acceptor, sinks drains an Outbox, and
// all of them, scorer/pipeline among them, depend on scorer, never the
// reverse. The model itself lives in scorer/markov, which is pure.
//
// Concurrency: Event and Alert are values; nothing here holds state.
package scorer
