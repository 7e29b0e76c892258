package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func placeholderSpec(t *testing.T, created time.Time) Spec {
	t.Helper()
	dir := t.TempDir()
	var bins []platformBinary
	for _, arch := range []string{"amd64", "arm64"} {
		p := filepath.Join(dir, arch)
		if err := os.WriteFile(p, []byte("not really falco-scorer for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
		bins = append(bins, platformBinary{OS: "linux", Arch: arch, Path: p})
	}
	cfg, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", "container.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Binaries: bins, Config: cfg, Created: created, Version: "v0.0.0-test",
		Revision: "abc", Source: "https://example.invalid/fs", Ref: "example.invalid/fs:test", SkipELFCheck: true}
}

// TestBuildReproducible: the same inputs give the same index digest (so
// a rebuilt release can be compared with the published one), and the
// creation time is part of it.
func TestBuildReproducible(t *testing.T) {
	created := time.Unix(1764547200, 0).UTC()
	a, err := Build(placeholderSpec(t, created), filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(placeholderSpec(t, created), filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Index != b.Index {
		t.Errorf("two builds of the same inputs: index %s and %s, want equal", a.Index, b.Index)
	}
	c, err := Build(placeholderSpec(t, created.Add(time.Second)), filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Index == a.Index {
		t.Errorf("a different creation time gave the same index %s", a.Index)
	}
}

// TestBuildLayout inspects a build of placeholder binaries through
// go-containerregistry's reader: the checks TestImageLayout runs on the
// real image, minus what needs real binaries.
func TestBuildLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "image")
	if _, err := Build(placeholderSpec(t, time.Unix(1764547200, 0)), dir); err != nil {
		t.Fatal(err)
	}
	for _, img := range inspectLayout(t, dir, []string{"linux/amd64", "linux/arm64"}) {
		checkSameContract(t, img.platform, img.config.Config)
	}
}

func TestCheckStatic(t *testing.T) {
	// The host's /bin/ls is a dynamically linked amd64 or arm64 binary.
	ls := "/bin/ls"
	if _, err := os.Stat(ls); err != nil {
		t.Skip("no /bin/ls")
	}
	err := checkStatic(ls, "amd64")
	err2 := checkStatic(ls, "arm64")
	if err == nil || err2 == nil {
		t.Fatalf("checkStatic(/bin/ls) = %v (amd64), %v (arm64), want errors: it is dynamic, and at most one arch", err, err2)
	}
	if !strings.Contains(err.Error()+err2.Error(), "dynamically linked") {
		t.Errorf("checkStatic(/bin/ls) errors %q, %q: want one to say dynamically linked", err, err2)
	}
	if err := checkStatic("image.go", "amd64"); err == nil {
		t.Errorf("checkStatic(a Go source file) = nil, want an error")
	}
}

// layerFile is one regular file, directory or link in a layer.
type layerFile struct {
	hdr  *tar.Header
	data []byte // regular files up to 1 MiB; nil for bigger ones
}

type inspected struct {
	platform   string
	config     *v1.ConfigFile
	files      map[string]layerFile
	compressed int64
	raw        int64
}

// inspectLayout opens an OCI layout written by Build and returns each
// platform's config and files, checking what must hold for any build:
// the platforms, the user, the absence of a shell.
func inspectLayout(t *testing.T, dir string, wantPlatforms []string) []inspected {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("read layout %s: %v", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1 (the image index)", len(im.Manifests))
	}
	if im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] == "" {
		t.Errorf("index.json entry has no org.opencontainers.image.ref.name")
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := idx.MediaType()
	if mt != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index media type = %s, want the OCI image index", mt)
	}
	iim, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var out []inspected
	for _, d := range iim.Manifests {
		plat := d.Platform.OS + "/" + d.Platform.Architecture
		got = append(got, plat)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != plat {
			t.Errorf("%s: config says %s/%s", plat, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: config user = %q, want 65532:65532 (non-root)", plat, cf.Config.User)
		}
		for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version",
			"org.opencontainers.image.revision", "org.opencontainers.image.created", "org.opencontainers.image.licenses"} {
			if cf.Config.Labels[l] == "" {
				t.Errorf("%s: label %s missing or empty", plat, l)
			}
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		in := inspected{platform: plat, config: cf, files: map[string]layerFile{}}
		for _, l := range layers {
			size, _ := l.Size()
			in.compressed += size
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s: layer: %v", plat, err)
				}
				in.raw += h.Size
				f := layerFile{hdr: h}
				if h.Typeflag == tar.TypeReg && h.Size <= 1<<20 {
					f.data, _ = io.ReadAll(tr)
				}
				in.files["/"+strings.TrimSuffix(h.Name, "/")] = f
			}
			rc.Close()
		}
		// No shell, no busybox, no package manager: nothing to exec into.
		for name, f := range in.files {
			base := filepath.Base(name)
			switch base {
			case "sh", "bash", "ash", "dash", "zsh", "busybox", "apt", "apt-get", "dpkg", "apk":
				t.Errorf("%s: layer contains %s", plat, name)
			}
			if f.hdr.Typeflag == tar.TypeSymlink || f.hdr.Typeflag == tar.TypeLink {
				t.Errorf("%s: layer contains a link %s -> %s", plat, name, f.hdr.Linkname)
			}
			if f.hdr.Mode&0o6000 != 0 {
				t.Errorf("%s: %s is setuid/setgid", plat, name)
			}
		}
		passwd := string(in.files["/etc/passwd"].data)
		if !strings.Contains(passwd, ":65532:65532:") {
			t.Errorf("%s: /etc/passwd = %q, want user 65532", plat, passwd)
		}
		if d := in.files["/data"]; d.hdr == nil || d.hdr.Uid != 65532 || d.hdr.Typeflag != tar.TypeDir {
			t.Errorf("%s: /data = %+v, want a directory owned by 65532", plat, d.hdr)
		}
		if f := in.files[binaryPath]; f.hdr == nil || f.hdr.Mode&0o111 == 0 {
			t.Errorf("%s: %s missing or not executable", plat, binaryPath)
		}
		if f := in.files[builtinConfigPath]; f.hdr == nil {
			t.Errorf("%s: %s missing", plat, builtinConfigPath)
		}
		out = append(out, in)
	}
	if strings.Join(got, ",") != strings.Join(wantPlatforms, ",") {
		t.Errorf("platforms = %v, want %v", got, wantPlatforms)
	}
	return out
}
