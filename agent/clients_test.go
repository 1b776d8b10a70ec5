package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestCraneSkopeoRoundTrip pushes an image with crane, copies it back with
// skopeo from the same agent and from a second agent that shares only the
// object store, and compares digests and bytes.
func TestCraneSkopeoRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("real clients: not in -short")
	}
	crane, skopeo := tool(t, "crane"), tool(t, "skopeo")
	origin := t.TempDir()
	a := startAgent(t, origin)

	img, err := random.Image(512<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "image.tar")
	ref, err := name.ParseReference("example/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	target := a.RegistryAddr() + "/team/app:v1"
	run(t, crane, "push", "--insecure", tarPath, target)
	if got := strings.TrimSpace(run(t, crane, "digest", "--insecure", target)); got != want.String() {
		t.Fatalf("crane digest = %s, want %s", got, want)
	}

	fromA := skopeoCopy(t, skopeo, a.RegistryAddr()+"/team/app:v1")
	if fromA.manifest != want.String() {
		t.Fatalf("skopeo copy from A: manifest %s, want %s", fromA.manifest, want)
	}
	// The second agent has its own empty cache and sees only the object store.
	waitFor(t, "outbox to drain", 30*time.Second, func() bool { return a.outbox.Pending() == 0 })
	b := startAgent(t, origin)
	fromB := skopeoCopy(t, skopeo, b.RegistryAddr()+"/team/app:v1")
	if fromB.manifest != want.String() {
		t.Fatalf("skopeo copy from B: manifest %s, want %s", fromB.manifest, want)
	}
	if len(fromA.blobs) != len(fromB.blobs) || len(fromA.blobs) < 5 {
		t.Fatalf("blob sets differ or too small: A %d, B %d", len(fromA.blobs), len(fromB.blobs))
	}
	for d, sum := range fromA.blobs {
		if fromB.blobs[d] != sum {
			t.Fatalf("blob %s differs between A and B", d)
		}
		if "sha256:"+sum != d {
			t.Fatalf("blob %s has content hashing to %s", d, sum)
		}
	}
	if got := b.metric(t, `shoal_fetch_bytes_total{source="origin"}`); got <= 0 {
		t.Fatalf("agent B fetched %v bytes from the origin, want > 0", got)
	}
}

type layoutCopy struct {
	manifest string            // digest of the manifest skopeo wrote
	blobs    map[string]string // digest → sha256 hex of the file's bytes
}

// skopeoCopy copies an image into an OCI layout with --preserve-digests.
func skopeoCopy(t *testing.T, skopeo, src string) layoutCopy {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", "docker://"+src, "oci:"+dir+":v1")
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v (%s)", err, raw)
	}
	out := layoutCopy{manifest: index.Manifests[0].Digest, blobs: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out.blobs["sha256:"+filepath.Base(f)] = hex.EncodeToString(sum[:])
	}
	return out
}

// run runs a command and returns its stdout, failing the test on error.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
