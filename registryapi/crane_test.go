package registryapi_test

import (
	"archive/tar"
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

// TestCrane drives the handler with a real client: push, pull, copy across
// repositories (a mount), list, tag, digest and delete.
func TestCrane(t *testing.T) {
	t.Parallel()
	bin := findTool(t, "crane", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registryapi.NewHandler(memory.New(), registryapi.DefaultOptions())}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	reg := ln.Addr().String()
	dir := t.TempDir()

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	content := bytes.Repeat([]byte("shoal "), 50000)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(content)
	_ = tw.Close()
	layerPath := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(layerPath, layer.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	crane := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--insecure")...)
		cmd.Env = append(os.Environ(), "HOME="+dir, "DOCKER_CONFIG="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("crane %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	src := reg + "/team/app"
	crane("append", "-f", layerPath, "-t", src+":v1", "--oci-empty-base")
	dig := crane("digest", src+":v1")
	crane("tag", src+":v1", "v2")
	if tags := crane("ls", src); tags != "v1\nv2" {
		t.Fatalf("crane ls: %q", tags)
	}
	crane("copy", src+":v1", reg+"/team/copy:latest")
	if got := crane("digest", reg+"/team/copy:latest"); got != dig {
		t.Fatalf("copied digest %s, want %s", got, dig)
	}
	crane("pull", "--format", "oci", src+"@"+dig, filepath.Join(dir, "pulled"))
	if cat := crane("catalog", reg); cat != "team/app\nteam/copy" {
		t.Fatalf("crane catalog: %q", cat)
	}
	crane("delete", src+"@"+dig)
	cmd := exec.CommandContext(t.Context(), bin, "manifest", src+":v1", "--insecure")
	cmd.Env = append(os.Environ(), "HOME="+dir, "DOCKER_CONFIG="+dir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "MANIFEST_UNKNOWN") {
		t.Fatalf("manifest after delete: %v %s", err, out)
	}
}
