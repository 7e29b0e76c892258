// Command falco-loadgen loads a Falco HTTP receiver (falco-scorer,
// falcosidekick, or anything that takes Falco's http_output) the way Falco
// does: keep-alive connections, each posting one Falco JSON event per
// request, for a fixed duration. It prints accepted events per second, HTTP
// status counts and latency percentiles.
//
//	falco-loadgen -url http://127.0.0.1:2801/ -c 16 -d 10s
//	falco-loadgen -url http://127.0.0.1:2801/ -rate 5000      # rate-limited; latency from the schedule
//	falco-loadgen -url http://127.0.0.1:2801/ -batch 100      # NDJSON batches
//	falco-loadgen -serve-noop 127.0.0.1:2802                  # a no-op receiver to compare with
//	falco-loadgen -capture 500000 > capture.ndjson            # a capture for falco-scorer replay
//
// The traffic (Generator) is a fleet of containers of many images: most
// events are observations from falco-scorer's Falco rules (tag falco_scorer,
// evt.type following each image's syscall program with some noise, process
// exits), the rest Falco rule alerts at Notice or above. Each event carries
// its send time in "time" and, in nanoseconds, in output_fields["evt.time"],
// so that a consumer downstream can measure event-to-destination latency.
//
// What it must not do: send anywhere but loopback or your own test hosts (it
// sends as fast as it can), or hide latency: with -rate, latency is measured
// from each request's scheduled time, so a stalled receiver shows up.
//
// Concurrency: Run starts one sender goroutine per connection, each with its
// own Generator and tally, merged when all have stopped; nothing is shared
// but the HTTP transport.
//
// The benchmarks of this package (e2e_bench_test.go, pipeline_bench_test.go)
// are falco-scorer's performance harness; results are in results/.
package main
