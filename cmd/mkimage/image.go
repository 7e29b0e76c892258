package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The runtime contract, shared with deploy/Dockerfile (tests compare them).
const (
	binaryPath        = "/falco-scorer"
	builtinConfigPath = "/etc/falco-scorer/falco-scorer.yaml"
	caBundlePath      = "/etc/ssl/certs/ca-certificates.crt"
	dataDir           = "/data"
	runtimeUID        = 65532 // distroless "nonroot"
	runtimeUser       = "65532:65532"
)

var (
	entrypoint = []string{binaryPath, "serve"}
	command    = []string{"--config", builtinConfigPath}
	ports      = []string{"2801/tcp", "2802/tcp"}
)

// caBundleModule names the module whose roots the image carries.
const caBundleModule = "golang.org/x/crypto/x509roots/fallback"

// platformBinary is one platform's static binary.
type platformBinary struct {
	OS, Arch, Path string
}

func (p platformBinary) String() string { return p.OS + "/" + p.Arch + "=" + p.Path }

// Spec is everything an image is made of: the same Spec gives the same
// digests.
type Spec struct {
	Binaries []platformBinary
	Config   []byte // the built-in service config
	Created  time.Time
	Version  string
	Revision string
	Source   string
	Ref      string
	// SkipELFCheck lets tests pack a placeholder instead of a real binary.
	SkipELFCheck bool
}

// Result describes what Build wrote.
type Result struct {
	Index     v1.Hash
	Manifests []ManifestInfo
	CARoots   int
}

// ManifestInfo is one platform's image.
type ManifestInfo struct {
	Platform                 string
	Digest                   v1.Hash
	Compressed, Uncompressed int64
}

// elfMachines maps GOARCH to the ELF machine a binary for it must have.
var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkStatic refuses a binary that is not a static ELF executable for
// arch: a dynamically linked one would not start on an empty base.
func checkStatic(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	if want, ok := elfMachines[arch]; !ok || f.Machine != want {
		return fmt.Errorf("binary %s: ELF machine %v, want %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s: dynamically linked (has an ELF interpreter); build with CGO_ENABLED=0", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("binary %s: needs shared libraries %v", path, libs)
	}
	return nil
}

// caBundle is the PEM bundle of the unconstrained NSS roots. Roots with a
// distrust-after constraint are left out: a PEM file cannot carry the
// constraint, and trusting them without it would be wider than NSS.
func caBundle() ([]byte, int) {
	var b bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
		n++
	}
	return b.Bytes(), n
}

// fileEntry is one tar entry of the layer.
type fileEntry struct {
	name     string // absolute path in the image
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// layerTar builds the layer's uncompressed tar: sorted, numeric owners,
// every time set to created.
func layerTar(entries []fileEntry, created time.Time) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name[1:], // relative, as image layers are
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: created,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.name, err)
		}
		if !e.dir {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("tar %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return buf.Bytes(), nil
}

// rootfsEntries is the image's whole filesystem apart from the binary.
func rootfsEntries(serviceConfig, cas []byte) []fileEntry {
	dir := func(name string, mode int64, uid int) fileEntry {
		return fileEntry{name: name, mode: mode, uid: uid, gid: uid, dir: true}
	}
	file := func(name string, data []byte) fileEntry {
		return fileEntry{name: name, mode: 0o644, data: data}
	}
	return []fileEntry{
		dir("/etc", 0o755, 0),
		dir("/etc/falco-scorer", 0o755, 0),
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		dir("/home", 0o755, 0),
		dir("/home/nonroot", 0o700, runtimeUID),
		// A fresh named volume is seeded from here: owned by the runtime
		// user, so it is writable without an init step.
		dir(dataDir, 0o755, runtimeUID),
		{name: "/tmp", mode: 0o1777, dir: true},
		file("/etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("/etc/group", []byte("root:x:0:\nnonroot:x:65532:\n")),
		// Go's resolver reads it to order files and DNS.
		file("/etc/nsswitch.conf", []byte("hosts: files dns\n")),
		file(builtinConfigPath, serviceConfig),
		file(caBundlePath, cas),
	}
}

// moduleVersion is the version of mod this program was built with.
func moduleVersion(mod string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == mod {
				return d.Version
			}
		}
	}
	return "(unknown)"
}

// Build writes the multi-platform image described by spec as an OCI image
// layout in dir (replacing it).
func Build(spec Spec, dir string) (Result, error) {
	var res Result
	cas, n := caBundle()
	res.CARoots = n
	labels := map[string]string{
		"org.opencontainers.image.title":       "falco-scorer",
		"org.opencontainers.image.description": "Per-image behaviour baselines and anomaly scores for Falco events",
		"org.opencontainers.image.source":      spec.Source,
		"org.opencontainers.image.version":     spec.Version,
		"org.opencontainers.image.revision":    spec.Revision,
		"org.opencontainers.image.created":     spec.Created.Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.base.name":   "scratch",
		"io.falco-scorer.ca-roots":             caBundleModule + "@" + moduleVersion(caBundleModule),
	}
	var adds []mutate.IndexAddendum
	for _, b := range spec.Binaries {
		if !spec.SkipELFCheck {
			if err := checkStatic(b.Path, b.Arch); err != nil {
				return res, err
			}
		}
		bin, err := os.ReadFile(b.Path)
		if err != nil {
			return res, fmt.Errorf("binary: %w", err)
		}
		entries := append(rootfsEntries(spec.Config, cas), fileEntry{name: binaryPath, mode: 0o755, data: bin})
		raw, err := layerTar(entries, spec.Created)
		if err != nil {
			return res, err
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(raw)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return res, fmt.Errorf("layer %s: %w", b.Arch, err)
		}
		img, err := mutate.Append(empty.Image, mutate.Addendum{
			Layer: layer,
			History: v1.History{
				Created:   v1.Time{Time: spec.Created},
				CreatedBy: "mkimage: falco-scorer " + spec.Version + " " + b.OS + "/" + b.Arch,
			},
		})
		if err != nil {
			return res, fmt.Errorf("image %s: %w", b.Arch, err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			return res, fmt.Errorf("config %s: %w", b.Arch, err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = b.OS, b.Arch
		cf.Created = v1.Time{Time: spec.Created}
		exposed := map[string]struct{}{}
		for _, p := range ports {
			exposed[p] = struct{}{}
		}
		cf.Config = v1.Config{
			User:       runtimeUser,
			Entrypoint: entrypoint,
			Cmd:        command,
			WorkingDir: "/",
			Env: []string{
				"PATH=/",
				"SSL_CERT_FILE=" + caBundlePath,
			},
			ExposedPorts: exposed,
			Volumes:      map[string]struct{}{dataDir: {}},
			Labels:       labels,
		}
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			return res, fmt.Errorf("config %s: %w", b.Arch, err)
		}
		d, err := img.Digest()
		if err != nil {
			return res, fmt.Errorf("digest %s: %w", b.Arch, err)
		}
		csize, err := layer.Size()
		if err != nil {
			return res, fmt.Errorf("layer size %s: %w", b.Arch, err)
		}
		res.Manifests = append(res.Manifests, ManifestInfo{
			Platform: b.OS + "/" + b.Arch, Digest: d, Compressed: csize, Uncompressed: int64(len(raw)),
		})
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: b.OS, Architecture: b.Arch}},
		})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	idx = mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.source":   spec.Source,
		"org.opencontainers.image.version":  spec.Version,
		"org.opencontainers.image.revision": spec.Revision,
		"org.opencontainers.image.created":  spec.Created.Format(time.RFC3339),
	}).(v1.ImageIndex)
	if err := os.RemoveAll(dir); err != nil {
		return res, fmt.Errorf("out %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return res, fmt.Errorf("out %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": spec.Ref,
	})); err != nil {
		return res, fmt.Errorf("out %s: %w", dir, err)
	}
	if res.Index, err = idx.Digest(); err != nil {
		return res, fmt.Errorf("index digest: %w", err)
	}
	return res, nil
}
