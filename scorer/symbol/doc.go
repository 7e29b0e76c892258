// Package symbol turns a Falco observation into the token the sequence model
// counts: evt.type plus an abstraction of its arguments, because that is what
// a real Falco stream carries and what tells an intrusion from routine work.
// Which binary ran, which class of file was written, which class of endpoint
// was contacted:
//
//	execve /usr/bin/curl          exec'd path (dropped binaries: "execve /tmp/*")
//	open create+x /tmp/*          open mode and the file's directory class
//	open read /etc/shadow         sensitive paths (the rules' list) kept exact
//	chmod /tmp/* +x               metadata change, with "+x" for execute bits
//	connect external:4444         server class (loopback, cluster, external), port
//	accept :8080 from cluster     own port exact, client class
//	setuid root                   privilege change and its outcome
//
// Volatile path components (numbers, hashes, UUIDs, random temporary names)
// become "*"; ephemeral ports (≥ 32768) become "ephemeral"; a failed call ends
// in " failed". Symbols are readable as they stand: explanations print them.
//
// It must not import the pipeline or do I/O; it only reads the strings it is
// given. A Symbolizer is immutable and safe for concurrent use.
package symbol
