package slack

import "net/http"

// SetTransport makes s post through rt instead of the network: the tests
// that depend on time (pacing, Retry-After, digests) run in a
// testing/synctest bubble against an in-memory Slack, since a real socket
// would keep the bubble's fake clock from advancing.
func SetTransport(s *Sink, rt http.RoundTripper) { s.client.Transport = rt }
