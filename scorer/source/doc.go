// Package source turns Falco's outputs into scorer.Events and hands them to a
// scorer.Acceptor. It has three inputs that produce equal Events for the same
// Falco event:
//
//   - HTTP, for Falco ≥ 0.44 http_output and falcosidekick-style clients:
//     POST / with one Falco JSON event (Content-Type application/json, text/plain
//     or none) or a batch of events (application/x-ndjson), optionally
//     gzip-encoded. The answer is 200 only after Accept returned nil, i.e. after
//     the events are durable: Falco's http_output ignores the status, so a
//     premature 200 would lose events silently on a crash. Overload answers
//     429 (Retry-After: 1), a persistence failure 503, bad input 4xx with a JSON
//     body {"error": "...", "reason": "..."}. Note that Falco posts JSON only
//     with json_output: true (otherwise it sends text/plain lines, which are
//     rejected as invalid_json), and that its compress_uploads option asks
//     for a compressed response rather than gzipping the request.
//   - gRPC, for Falco ≤ 0.43: the outputs "sub" stream of
//     github.com/falcosecurity/client-go over a unix socket or TCP with mTLS.
//     Falco streams what it has queued after each request message and then
//     waits for the next one, so the input sends a request every
//     poll_interval. It reconnects with jittered exponential backoff.
//   - NDJSON: ReadNDJSON reads Falco JSON lines (file_output, program_output, a
//     capture) for the replay command.
//
// Delivery semantics. HTTP is at-least-once end to end: Falco gets 200 only for
// durable events (although Falco itself does not retry on a non-200). gRPC has
// no acknowledgement toward Falco: an event is gone from Falco's queue once it
// is written to the stream, so the events in flight between Falco and a
// successful Accept (in the socket buffers, in the bounded channel between the
// receiving goroutine and the accepting one, or in a batch being retried) are
// lost if falco-scorer crashes; they are not lost on overload (Accept is
// retried, and the stream stops being read, which pushes back to Falco through
// gRPC flow control; Falco's gRPC output queue then grows in Falco's memory),
// and on a clean shutdown the events already received are still accepted
// within shutdown_timeout. NDJSON retries ErrOverloaded and stops on any
// other Accept error.
//
// gRPC hot path: client-go's generated Response decodes output_fields through
// reflection, so the sub stream is read through a codec that decodes the wire
// format with protowire (wire.go), and Raw is written by appendFalcoJSON, which
// produces the same bytes as Event.EncodeJSON. Fuzz targets check both against
// client-go and EncodeJSON. EventFromResponse remains for callers that hold a
// generated Response.
//
// Authentication: Falco's http_output sets no custom header, so it cannot send
// a bearer token; protect it with mTLS (client_ca_file) or keep the loopback
// default. The token is for curl, falcosidekick-style relays and scripts.
//
// What it must not do: it never answers 200 before Accept returned nil; it
// never logs per event above debug level; it never logs tokens (they are
// secret.Secret and compared in constant time); metric labels are bounded
// (source, reason, code). Events handed to Accept are fresh slices that the
// package does not touch again, so an Acceptor may keep them.
//
// Concurrency: HTTP handles requests concurrently (bounded by max_in_flight)
// and calls Accept from each request's goroutine. GRPC runs one receiving
// goroutine and one accepting goroutine per stream, so Accept is called from
// one goroutine at a time. ReadNDJSON calls Accept from the caller's
// goroutine. HTTP, GRPC and their methods are safe for concurrent use; Run may
// be called once.
package source
