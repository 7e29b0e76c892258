// Command mkimage builds falco-scorer's OCI image without a Docker daemon:
// it packs already cross-compiled static binaries (one per platform) into a
// multi-platform OCI image layout with go-containerregistry, so `make image`
// needs nothing but Go and the module proxy.
//
// The base is empty (scratch), not a pulled distroless image: nothing can be
// pulled here, and a base that is nothing cannot drift. What distroless
// static would add is generated in the single layer: /etc/passwd and
// /etc/group with the non-root user 65532 (distroless "nonroot"), CA
// certificates from golang.org/x/crypto/x509roots/fallback (Mozilla's NSS
// roots, pinned by that module's version and its go.sum hash — the
// equivalent of a base pinned by digest), /etc/nsswitch.conf, an empty /tmp
// and a /data owned by the runtime user. No shell, no package manager.
//
// The output is reproducible: every timestamp is -created (make passes the
// last commit's time, SOURCE_DATE_EPOCH style), entries are sorted, owners
// are numeric, and gzip carries no name or time; the same binaries give the
// same digests.
//
// The image config matches deploy/Dockerfile (entrypoint, command, user,
// working directory, ports, volume); cmd/mkimage's tests check both.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// binaryFlags collects -binary os/arch=path (repeated).
type binaryFlags []platformBinary

func (b *binaryFlags) String() string { return fmt.Sprint(*b) }

func (b *binaryFlags) Set(v string) error {
	plat, path, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("-binary %q: want os/arch=path", v)
	}
	osName, arch, ok := strings.Cut(plat, "/")
	if !ok || osName != "linux" || arch == "" {
		return fmt.Errorf("-binary %q: want linux/<arch>=path", v)
	}
	*b = append(*b, platformBinary{OS: osName, Arch: arch, Path: path})
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		bins     binaryFlags
		out      = fs.String("out", "bin/image", "OCI image layout directory to write (replaced)")
		config   = fs.String("config", "deploy/config/container.yaml", "built-in service config, installed as "+builtinConfigPath)
		ref      = fs.String("ref", "ghcr.io/falco-scorer/falco-scorer:dev", "image reference recorded as the layout's ref.name annotation")
		ver      = fs.String("version", "dev", "org.opencontainers.image.version label")
		revision = fs.String("revision", "", "org.opencontainers.image.revision label (the commit)")
		source   = fs.String("source", "https://github.com/falco-scorer/falco-scorer", "org.opencontainers.image.source label")
		created  = fs.Int64("created", 0, "creation time, seconds since the epoch (every timestamp in the image)")
	)
	fs.Var(&bins, "binary", "linux/<arch>=path of a static falco-scorer binary (repeat per platform)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(bins) == 0 {
		return fmt.Errorf("-binary: none given")
	}
	cfg, err := os.ReadFile(*config)
	if err != nil {
		return fmt.Errorf("-config: %w", err)
	}
	spec := Spec{
		Binaries: bins,
		Config:   cfg,
		Created:  time.Unix(*created, 0).UTC(),
		Version:  *ver,
		Revision: *revision,
		Source:   *source,
		Ref:      *ref,
	}
	res, err := Build(spec, *out)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s)\n", *out, *ref)
	fmt.Printf("index %s\n", res.Index)
	for _, m := range res.Manifests {
		fmt.Printf("  %-12s manifest %s  layer %.1f MiB compressed, %.1f MiB uncompressed\n",
			m.Platform, m.Digest, float64(m.Compressed)/(1<<20), float64(m.Uncompressed)/(1<<20))
	}
	fmt.Printf("CA roots: %d from %s\n", res.CARoots, caBundleModule)
	return nil
}
