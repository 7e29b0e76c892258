package markov

import "syscall"

// threadCPU returns the CPU time the calling OS thread has used, in
// nanoseconds (getrusage RUSAGE_THREAD), and whether it is available.
func threadCPU() (int64, bool) {
	const rusageThread = 1 // RUSAGE_THREAD, Linux ≥ 2.6.26
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
