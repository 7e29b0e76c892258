// Package lab is the falco-scorer lab: evaluation data that matches what
// Falco sends in production. It converts strace traces of real programs
// (recorded by cmd/falco-lab) into Falco JSON events exactly as the shipped
// observation rules (rules/falco-scorer_rules.yaml) would emit them, and
// defines the labels file (Labels, LoadLabels) that tells attack runs from
// normal processes in a capture.
//
// The converter applies the rules' conditions (exit events only; forks of
// new processes only; procexit of the main thread; opens that write outside
// /proc, /sys and /dev, create, or read a sensitive path; IPv4/IPv6 sockets
// only) and prints the rules' output fields, tracking the process tree from
// the trace's clone, execve and setuid calls. TestConverterFollowsRules fails
// when the rules file and the converter's tables disagree.
//
// Pure Go, no root needed: recording is cmd/falco-lab's job. No package
// state; a Converter is used by one goroutine.
package lab
