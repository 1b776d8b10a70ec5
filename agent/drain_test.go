package agent

import (
	"crypto/sha256"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
)

// TestDrain sends SIGTERM while a client is pulling a 1 GiB blob that is
// still arriving from the origin: the pull completes, then the agent exits 0.
func TestDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB process test: not in -short")
	}
	const size = 1 << 30
	origin := t.TempDir()
	store, err := filestore.New(origin)
	if err != nil {
		t.Fatal(err)
	}
	d := patternDigest(size)
	if err := store.Put(t.Context(), objstore.BlobKey(d), newPatternReader(size), size); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "--data-dir", t.TempDir(), "--origin", "file://"+origin, "--drain-timeout", "60s")
	resp, err := http.Get(p.url("/v2/drain/repo/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	if _, err := io.CopyN(got, resp.Body, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the agent is draining while we still read
	n, err := io.Copy(got, resp.Body)
	if err != nil || n+8<<20 != size {
		t.Fatalf("pull during drain: %d bytes, %v", n+8<<20, err)
	}
	if dd := digest.NewDigestFromBytes(digest.SHA256, got.Sum(nil)); dd != d {
		t.Fatalf("pulled %s, want %s", dd, d)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("agent did not exit after the drain")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
