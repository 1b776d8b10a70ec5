package mirror

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRealContainerdPullsThroughMirror is the end-to-end check: a real
// containerd daemon (Debian's containerd 1.6, with its own hosts.toml
// parser) fetches an image for an upstream that does not exist, using the
// hosts.toml WriteContainerd wrote, and every request reaches the mirror
// carrying ?ns=<upstream>. It needs root and the containerd and ctr
// binaries (.ci/tools.sh installs them); otherwise it skips.
func TestRealContainerdPullsThroughMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a containerd daemon")
	}
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	containerd, err1 := exec.LookPath("containerd")
	ctr, err2 := exec.LookPath("ctr")
	if err1 != nil || err2 != nil {
		t.Skip("containerd or ctr not installed (Debian package containerd)")
	}
	t.Parallel()

	reg := newFakeRegistry(t, "library/shoal-test", "1")
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)

	// The upstream is a loopback port where nothing listens: if containerd
	// skipped the mirror it would fail fast, and never leave the machine.
	const upstream = "127.0.0.1:1"
	dir := t.TempDir()
	if err := WriteContainerd(dir, []string{upstream}, srv.URL, false, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	sock := startContainerd(t, containerd, ctr, dir)

	ref := upstream + "/library/shoal-test:1"
	cmd := exec.Command(ctr, "--address", sock, "--namespace", "shoal-test", "content", "fetch",
		"--hosts-dir", filepath.Join(dir, CertsDir), ref)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ctr content fetch %s: %v\n%s\nmirror saw: %v", ref, err, out, reg.requests())
	}
	reqs := reg.requests()
	var sawManifest, sawBlob bool
	for _, r := range reqs {
		if !strings.HasSuffix(r, " ns="+upstream) {
			t.Errorf("request %q lacks ns=%s", r, upstream)
		}
		sawManifest = sawManifest || strings.Contains(r, "/manifests/")
		sawBlob = sawBlob || strings.Contains(r, "/blobs/")
	}
	if !sawManifest || !sawBlob {
		t.Errorf("mirror saw %v, want manifest and blob requests", reqs)
	}
}

// startContainerd runs a private containerd (no CRI plugin) under dir and
// returns its socket once it answers.
func startContainerd(t *testing.T, containerd, ctr, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(containerd, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("containerd log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if exec.Command(ctr, "--address", sock, "version").Run() == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s within 30s", sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeRegistry serves one single-layer OCI image and records each request
// as "METHOD path ns=<ns parameter>".
type fakeRegistry struct {
	repo, tag string
	blobs     map[string][]byte // by digest, the manifest included
	manifest  string            // its digest

	mu   sync.Mutex
	seen []string
}

func newFakeRegistry(t *testing.T, repo, tag string) *fakeRegistry {
	t.Helper()
	r := &fakeRegistry{repo: repo, tag: tag, blobs: map[string][]byte{}}
	add := func(b []byte) string {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		r.blobs[d] = b
		return d
	}
	var layer bytes.Buffer
	gz := gzip.NewWriter(&layer)
	tw := tar.NewWriter(gz)
	content := []byte("hello from shoal\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	layerDigest := add(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:0000000000000000000000000000000000000000000000000000000000000000"}},
	})
	configDigest := add(config)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layer.Len()}},
	})
	r.manifest = add(manifest)
	return r
}

func (r *fakeRegistry) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func (r *fakeRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Path+" ns="+req.URL.Query().Get("ns"))
	r.mu.Unlock()
	prefix := "/v2/" + r.repo + "/"
	rest, ok := strings.CutPrefix(req.URL.Path, prefix)
	if !ok {
		if req.URL.Path == "/v2/" {
			return
		}
		http.NotFound(w, req)
		return
	}
	kind, ref, _ := strings.Cut(rest, "/")
	if kind == "manifests" && ref == r.tag {
		ref = r.manifest
	}
	b, found := r.blobs[ref]
	if !found || (kind != "manifests" && kind != "blobs") {
		http.NotFound(w, req)
		return
	}
	if kind == "manifests" {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("Docker-Content-Digest", ref)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	if req.Method == http.MethodGet {
		_, _ = w.Write(b) // the client hung up; containerd reports it
	}
}
