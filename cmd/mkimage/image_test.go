//go:build image

// TestImageLayout inspects the image `make image` wrote (make check-image
// builds it first and passes IMAGE_DIR): it is behind the image build tag
// because building two static binaries takes minutes.

package main

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// Size budget of one platform's image: the compressed layer is what every
// node pulls. Measured 10.4 MiB compressed and 22.1 MiB uncompressed
// (amd64; arm64 9.6 and 20.6) at the first make image; the budget leaves
// room to grow, not to double.
const (
	maxCompressed   = 16 << 20
	maxUncompressed = 36 << 20
)

func TestImageLayout(t *testing.T) {
	dir := os.Getenv("IMAGE_DIR")
	if dir == "" {
		t.Fatal("IMAGE_DIR is not set: run make check-image")
	}
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	for _, img := range inspectLayout(t, dir, []string{"linux/amd64", "linux/arm64"}) {
		t.Logf("%s: %.1f MiB compressed, %.1f MiB uncompressed, %d entries",
			img.platform, float64(img.compressed)/(1<<20), float64(img.raw)/(1<<20), len(img.files))
		checkSameContract(t, img.platform, img.config.Config)
		if img.compressed > maxCompressed || img.raw > maxUncompressed {
			t.Errorf("%s: %d bytes compressed, %d uncompressed; budget %d and %d",
				img.platform, img.compressed, img.raw, maxCompressed, maxUncompressed)
		}
		// The binary: the platform's machine, static (no interpreter: the
		// image has no libc), and its size in the budget above.
		bin := img.files[binaryPath]
		if bin.hdr == nil {
			t.Fatalf("%s: no %s", img.platform, binaryPath)
		}
		// Big files are not kept by inspectLayout: re-read the binary
		// through the layer only for its ELF header check.
		data := readFile(t, dir, img.platform, binaryPath)
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %s is not ELF: %v", img.platform, binaryPath, err)
		}
		if f.Machine != machines[img.platform] {
			t.Errorf("%s: binary machine %v, want %v", img.platform, f.Machine, machines[img.platform])
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: binary is dynamically linked", img.platform)
			}
		}
		if img.platform == "linux/"+runtime.GOARCH {
			runInImage(t, img, dir)
		}
		// CA roots for Kafka over TLS, Slack and webhooks.
		pool := 0
		rest := img.files[caBundlePath].data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				t.Errorf("%s: CA bundle: %v", img.platform, err)
			}
			pool++
		}
		if pool < 100 {
			t.Errorf("%s: CA bundle has %d certificates, want the NSS roots (>100)", img.platform, pool)
		}
	}
}

// runInImage unpacks the host platform's image and runs its entrypoint in
// a chroot as the image's user: `version` must print the image's version
// label, and `config check` must accept the built-in config with the image's
// files alone (no libc, no shell). Needs root for chroot; skipped otherwise.
func runInImage(t *testing.T, img inspected, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Logf("%s: not root, not running the binary in a chroot", img.platform)
		return
	}
	root := t.TempDir()
	for name, f := range img.files {
		p := filepath.Join(root, name)
		switch {
		case f.hdr.Typeflag == '5':
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			data := f.data
			if data == nil {
				data = readFile(t, dir, img.platform, name)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, os.FileMode(f.hdr.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, f := range img.files {
		if err := os.Chmod(filepath.Join(root, name), os.FileMode(f.hdr.Mode)&0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(root, name), f.hdr.Uid, f.hdr.Gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		cfg := img.config.Config
		cmd := exec.Command(cfg.Entrypoint[0], args...)
		cmd.Dir = "/"
		cmd.Env = cfg.Env
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v in the image: %v\n%s", img.platform, args, err, out)
		}
		return string(out)
	}
	want := "falco-scorer " + img.config.Config.Labels["org.opencontainers.image.version"] + "\n"
	if got := run("version"); !strings.HasPrefix(got, want) {
		t.Errorf("%s: version in the image = %q, want it to start with %q", img.platform, got, want)
	}
	t.Logf("%s: %s", img.platform, run("config", "check", builtinConfigPath))
}
