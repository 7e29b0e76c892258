// Package deploy holds falco-scorer's deployment files, not code: the
// Dockerfile, the example service and rules configuration (config/), the
// values, sidecar container and manifests that add falco-scorer as an
// ordinary container to the pods of the falcosecurity/falco Helm chart
// (kubernetes/, with the post-renderer cmd/inject-sidecar: an init
// container could keep Falco from starting), and a standalone Helm chart
// (helm/falco-scorer). The image is built by cmd/mkimage (make image).
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
// configuration is checked with `falco-scorer config check`. Behind the
// deploy build tag (make check-deploy), Helm itself lints and renders the
// standalone chart and the vendored falco chart with our values, and every
// rendered and shipped object is validated against the Kubernetes OpenAPI
// schemas.
//
// Nothing here is imported by the service; the package must not grow code
// beyond this comment.
package deploy
