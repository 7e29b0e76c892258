// Package deploy holds falco-scorer's deployment files, not code: the
// Dockerfile, the example service and rules configuration (config/), the
// values and manifests that add falco-scorer as a sidecar to the
// falcosecurity/falco Helm chart (kubernetes/), and a standalone Helm chart
// (helm/falco-scorer).
//
// Its tests parse every manifest and check what a cluster would reject or
// what would break falco-scorer at run time: kinds and required fields,
// probes on port 2801, a non-root read-only container without capabilities,
// resource limits, volumes that exist, rules files that the rules package
// accepts, and the Falco rules embedded in the chart values being the ones
// the rules package ships. The Helm chart is also linted and rendered with
// Helm itself when the Go module proxy can provide it.
//
// Nothing here is imported by the service; the package must not grow code
// beyond this comment.
package deploy
