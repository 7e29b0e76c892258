//go:build image

// TestImageLayout inspects the image `make image` wrote (make check-image
// builds it first and passes IMAGE_DIR): it is behind the image build tag
// because building two static binaries takes minutes.

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gopkg.in/yaml.v3"

	"github.com/falco-scorer/falco-scorer/scorer/scorertest"
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
	root := unpackImage(t, img, dir)
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

// unpackImage writes an image's files, modes and owners into a new directory.
func unpackImage(t *testing.T, img inspected, dir string) string {
	t.Helper()
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
	return root
}

// TestImageAsFalcoSidecar runs the image as the Falco chart's sidecar
// would, short of a cluster: the shipped ConfigMap's falco-scorer.yaml and
// rules.yaml mounted over /etc/falco-scorer, an empty admin-token, a
// root-owned /data (a fresh hostPath), the sidecar's args and user. It then
// does the deploy/README.md check: the test event posted to the ingest port
// is answered 200, counted in /metrics, and the alert reaches the stdout sink.
// Root is needed for chroot; capabilities are not dropped here as the
// sidecar's securityContext does.
func TestImageAsFalcoSidecar(t *testing.T) {
	dir := os.Getenv("IMAGE_DIR")
	if dir == "" {
		t.Fatal("IMAGE_DIR is not set: run make check-image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot")
	}
	var img inspected
	for _, i := range inspectLayout(t, dir, []string{"linux/amd64", "linux/arm64"}) {
		if i.platform == "linux/"+runtime.GOARCH {
			img = i
		}
	}
	if img.config == nil {
		t.Skipf("no image for linux/%s", runtime.GOARCH)
	}
	root := unpackImage(t, img, dir)
	deployDir := filepath.Join("..", "..", "deploy")

	// The ConfigMap and Secret volumes.
	var cm struct {
		Kind string
		Data map[string]string
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "falco-scorer-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for dec.Decode(&cm) == nil && cm.Kind != "ConfigMap" {
	}
	if cm.Kind != "ConfigMap" {
		t.Fatal("no ConfigMap in falco-scorer-config.yaml")
	}
	etc := filepath.Join(root, "etc", "falco-scorer")
	if err := os.RemoveAll(etc); err != nil {
		t.Fatal(err)
	}
	for k, v := range cm.Data {
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(etc, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "secrets", "admin-token"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	// A fresh hostPath: created by kubelet, owned by root, 0755.
	if err := os.Chown(filepath.Join(root, "data"), 0, 0); err != nil {
		t.Fatal(err)
	}

	// The sidecar container.
	var sc struct {
		Containers []struct {
			Name            string
			Args            []string
			SecurityContext struct {
				RunAsUser  *uint32 `yaml:"runAsUser"`
				RunAsGroup *uint32 `yaml:"runAsGroup"`
			} `yaml:"securityContext"`
		}
	}
	b, err = os.ReadFile(filepath.Join(deployDir, "kubernetes", "falco-scorer-sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &sc); err != nil || len(sc.Containers) != 1 || sc.Containers[0].SecurityContext.RunAsUser == nil {
		t.Fatalf("falco-scorer-sidecar.yaml: %v %+v", err, sc)
	}
	c := sc.Containers[0]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out syncBuffer
	cmd := exec.CommandContext(ctx, img.config.Config.Entrypoint[0], append(img.config.Config.Entrypoint[1:], c.Args...)...)
	cmd.Dir = "/"
	cmd.Env = img.config.Config.Env
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{
		Uid: *c.SecurityContext.RunAsUser, Gid: *c.SecurityContext.RunAsGroup}}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Logf("falco-scorer exit: %v", err)
		}
		t.Logf("falco-scorer output (tail):\n%s", tailString(out.String(), 3000))
	}()

	// Ready (journal replayed, ingest listening), as the README's step.
	waitFor(t, ctx, done, "GET /readyz 200", func() bool {
		resp, err := http.Get("http://127.0.0.1:2802/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	ev, err := os.ReadFile(filepath.Join(deployDir, "testdata", "test-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://127.0.0.1:2801/", "application/json", bytes.NewReader(ev))
	if err != nil {
		t.Fatalf("POST test event: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST test event: HTTP %d, want 200", resp.StatusCode)
	}
	waitFor(t, ctx, done, "events_received_total counted", func() bool {
		resp, err := http.Get("http://127.0.0.1:2802/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "falco_scorer_events_received_total") && !strings.HasSuffix(l, " 0") {
				return true
			}
		}
		return false
	})
	waitFor(t, ctx, done, "the alert on the stdout sink", func() bool {
		return strings.Contains(out.String(), "Terminal shell in container")
	})
}

// waitFor polls cond until it holds; the process ending or ctx expiring
// first fails the test. It asserts an event, never a duration.
func waitFor(t *testing.T, ctx context.Context, done chan error, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("falco-scorer exited before %s: %v", what, err)
		case <-ctx.Done():
			t.Fatalf("no %s before the test's deadline", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// syncBuffer captures the process's output, written concurrently.
type syncBuffer = scorertest.SyncBuffer

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// readFile returns one file of a platform's image in full.
func readFile(t *testing.T, dir, platform, name string) []byte {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := top.IndexManifest()
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	iim, _ := idx.IndexManifest()
	for _, d := range iim.Manifests {
		if d.Platform.OS+"/"+d.Platform.Architecture != platform {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				if "/"+h.Name == name {
					b, err := io.ReadAll(tr)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					return b
				}
			}
			rc.Close()
		}
	}
	t.Fatalf("%s: no %s in the image", platform, name)
	return nil
}
