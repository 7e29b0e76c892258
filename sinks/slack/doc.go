// Package slack is the Slack sink: readable Block Kit messages through an
// incoming webhook, or through chat.postMessage with a bot token so that
// follow-ups of one incident (same image and rule) thread under its first
// message.
//
// Alerts of one (image, rule) within the digest window are never silenced
// but grouped: the first in full, the next ones as digests ("and 37 more like
// this in 5 min"). Grouping happens within each batch the dispatcher hands
// over; the Pacer lets alerts pile up in the outbox while the sink waits for
// its next slot, so a burst becomes a handful of messages, each one sent only
// after Slack confirmed it, so a crash never loses an alert (at worst a digest
// is sent twice).
//
// Only Slack's answers about the message itself (invalid_payload,
// invalid_blocks, msg_too_long, ...) are permanent. Answers that concern
// every message (a revoked webhook, an archived channel, a revoked bot
// token, a bot not in the channel) are transient with a bounded reason
// (auth, config) and a hint in the error, so the dispatcher keeps the
// alerts, retries them, and logs what to fix; fixing it delivers them.
//
// What it must not do: send more than one message per MinInterval, ignore a
// 429's Retry-After, exceed Slack's limits (50 blocks, 3000 characters per
// section text), or let the webhook URL or bot token reach a log or an error.
//
// Concurrency: one Send at a time (the dispatcher's goroutine); Pace may run
// concurrently with nothing but Send's own caller.
package slack
