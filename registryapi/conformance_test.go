package registryapi_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

// findTool finds a test program on $PATH or in $(go env GOPATH)/bin, or
// skips the test saying how to install it.
func findTool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = string(bytes.TrimSpace(out))
		}
	}
	if gopath != "" {
		p := filepath.Join(gopath, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not found on $PATH or in $(go env GOPATH)/bin; install it with go install %s", name, install)
	return ""
}

// resultRE matches the suite's summary counters, e.g. "FAIL.....:   0".
var resultRE = regexp.MustCompile(`(?m)^\s*(Disabled|Skip|Pass|FAIL|Error|Total)\.+:\s+(\d+)\s*$`)

// TestConformance runs the OCI distribution-spec conformance suite against
// NewHandler over the memory backend, with every workflow enabled: pull,
// push (monolithic, chunked, streamed), mounts, content discovery (tags,
// referrers), content management (deletes, upload cancel), sha512 and the
// digest headers and tag parameters that are off by default.
func TestConformance(t *testing.T) {
	bin := findTool(t, "conformance", "github.com/opencontainers/distribution-spec/conformance@latest")
	if testing.Short() {
		t.Skip("conformance suite skipped in -short mode")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registryapi.NewHandler(memory.New(), registryapi.DefaultOptions())}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+ln.Addr().String(),
		"OCI_TLS=disabled",
		"OCI_RESULTS_DIR="+filepath.Join(dir, "results"),
		// Off by default; the handler supports them, so test them.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance output:\n%s", out)
	if err != nil {
		t.Fatalf("conformance suite failed: %v (results in %s)", err, dir)
	}
	counts := map[string]int{}
	for _, m := range resultRE.FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		counts[string(m[1])] = n
	}
	t.Logf("conformance counts: %v", counts)
	if !bytes.Contains(out, []byte("OCI Conformance Result: Pass")) || counts["Pass"] == 0 {
		t.Fatal("conformance suite did not report a passing result")
	}
	if counts["FAIL"] != 0 || counts["Error"] != 0 {
		t.Fatalf("conformance suite: %d FAIL, %d Error", counts["FAIL"], counts["Error"])
	}
}
