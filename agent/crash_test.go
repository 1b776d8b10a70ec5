package agent

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// randomBlob returns n pseudo-random bytes from seed and their digest.
func randomBlob(seed uint64, n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b, digest.FromBytes(b)
}

// pushBlob uploads b monolithically (POST ?digest=) and returns the status.
func pushBlob(t *testing.T, base, repo string, b []byte, d digest.Digest) int {
	t.Helper()
	return pushBlobFrom(t, base, repo, bytes.NewReader(b), int64(len(b)), d)
}

// pushBlobFrom streams size bytes from r as one monolithic upload.
func pushBlobFrom(t *testing.T, base, repo string, r io.Reader, size int64, d digest.Digest) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=%s", base, repo, d), r)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push %s: %v", d, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCrashSafety kills the agent with SIGKILL in the middle of a large
// upload and of a replication, restarts it, and checks that no partial blob
// is served, temp files are gone, the outbox drains and every blob
// acknowledged with 201 is in the object store.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test: not in -short")
	}
	data, origin := t.TempDir(), t.TempDir()
	args := []string{"--data-dir", data, "--origin", "file://" + origin}
	p := startProcess(t, args...)
	base := "http://" + p.registry

	acked := map[digest.Digest][]byte{}
	for i := range 8 {
		b, d := randomBlob(uint64(i), 64<<10+i)
		if code := pushBlob(t, base, "crash/repo", b, d); code != http.StatusCreated {
			t.Fatalf("push small blob: %d", code)
		}
		acked[d] = b
	}
	// An upload in flight: the client has sent part of a 64 MiB blob.
	partial, partialD := randomBlob(200, 64<<20)
	pr, pw := io.Pipe()
	uploadErr := make(chan error, 1)
	go func() {
		resp, err := http.Post(fmt.Sprintf("%s/v2/crash/repo/blobs/uploads/?digest=%s", base, partialD), "application/octet-stream", pr)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("upload finished with %s", resp.Status)
		}
		uploadErr <- err
	}()
	if _, err := pw.Write(partial[:40<<20]); err != nil {
		t.Fatal(err)
	}
	// Large blobs acknowledged just before the kill: push until the outbox
	// reports replication work in progress, so the kill lands mid-replication.
	pending := 0
	for i := 0; i < 8 && pending == 0; i++ {
		big, bigD := randomBlob(uint64(100+i), 48<<20)
		if code := pushBlob(t, base, "crash/repo", big, bigD); code != http.StatusCreated {
			t.Fatalf("push big blob: %d", code)
		}
		acked[bigD] = big
		pending = p.status(t).OutboxPending
	}
	if pending == 0 {
		t.Fatal("could not catch the outbox with pending work; the kill would not test replication")
	}
	p.kill()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-uploadErr; err == nil {
		t.Fatal("in-flight upload reported success across a SIGKILL")
	}
	t.Logf("killed with %d replication items pending and a 40/64 MiB upload in flight", pending)

	p2 := startProcess(t, args...)
	for _, sub := range []string{"incomplete", "uploads"} {
		entries, err := os.ReadDir(filepath.Join(data, "cas", sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Fatalf("cas/%s has %d leftovers after restart", sub, len(entries))
		}
	}
	resp, err := http.Head(p2.url("/v2/crash/repo/blobs/" + partialD.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("partial upload's digest answers %d, want 404", resp.StatusCode)
	}
	deadline := time.Now().Add(60 * time.Second)
	for p2.status(t).OutboxPending > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox did not drain: %+v", p2.status(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for d, b := range acked {
		got, err := os.ReadFile(filepath.Join(origin, "blobs", "sha256", d.Encoded()))
		if err != nil {
			t.Fatalf("acknowledged blob %s missing from the object store: %v", d, err)
		}
		if sha256.Sum256(got) != sha256.Sum256(b) {
			t.Fatalf("object store copy of %s is corrupt", d)
		}
		resp, err := http.Get(p2.url("/v2/crash/repo/blobs/" + d.String()))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, b) {
			t.Fatalf("GET %s after restart: %d, %d bytes, err %v", d, resp.StatusCode, len(body), err)
		}
	}
}
