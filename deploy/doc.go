// Package deploy holds falco-scorer's deployment files, not code: the
// Dockerfile, the example service and rules configuration (config/), the
// values and manifests that add falco-scorer as a sidecar to the
// falcosecurity/falco Helm chart (kubernetes/), and a standalone Helm chart
// (helm/falco-scorer).
//
// Its tests parse every manifest and check what a cluster would reject or
// what would break falco-scorer at run time: kinds and required fields,
// probes and metrics on the admin port 2802 with ingest on 2801 kept apart
// (loopback in the sidecars, NetworkPolicy in the chart), a non-root
// read-only container without capabilities, resource limits, volumes that
// exist, secret files the Secrets provide, Falco settings that keep the
// observation rules from being shadowed (rule_matching: all), rules files
// that the rules package accepts, and the Falco rules embedded in the chart
// values being the ones the rules package ships. Every shipped service
// configuration is checked with `falco-scorer config check`, and the Helm
// chart is linted and rendered with Helm itself when the Go module proxy
// can provide it.
//
// Nothing here is imported by the service; the package must not grow code
// beyond this comment.
package deploy
