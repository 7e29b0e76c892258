//go:build !linux

package markov

// threadCPU is not measured outside Linux.
func threadCPU() (int64, bool) { return 0, false }
