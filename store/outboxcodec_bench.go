//go:build falcobench

package store

import "os"

// benchRawOutboxEnv names the environment variable that stores outbox
// payloads uncompressed (as format 2 did), in binaries built with -tags
// falcobench only: BenchmarkDurability uses it to compare the service with
// and without the compression in the same run. Production builds have no
// such hook (outboxcodec_bench_off.go).
const benchRawOutboxEnv = "FALCO_SCORER_BENCH_RAW_OUTBOX"

// benchRawOutbox reports whether outbox payloads are to be stored raw.
func benchRawOutbox() bool { return os.Getenv(benchRawOutboxEnv) == "1" }
