package agent

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas"
)

// cachedBlobPath is where an agent's cache keeps d.
func cachedBlobPath(dataDir string, d digest.Digest) string {
	return filepath.Join(dataDir, "cas", "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

// corruptFile flips one byte of path in place (same size, same inode).
func corruptFile(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// pushReplicated pushes b to a and waits until the outbox has written it
// to the object store (the cached copy is then evictable and refetchable).
func pushReplicated(t *testing.T, a *testAgent, repo string, b []byte, d digest.Digest) {
	t.Helper()
	if code := pushBlob(t, "http://"+a.RegistryAddr(), repo, b, d); code != 201 {
		t.Fatalf("push %s: %d", d, code)
	}
	// The outbox counts the item done a moment before the cache marks the
	// blob replicated (CI saw State local right after Pending reached 0).
	waitFor(t, "replication", 30*time.Second, func() bool {
		info, err := a.cas.Stat(t.Context(), d)
		return a.status().OutboxPending == 0 && err == nil && info.State == cas.StateReplicated
	})
}

// TestReliabilityCorruptOnDisk changes a cached blob's bytes behind the
// agent's back. After a restart the blob is checked before its first serve;
// while running, the periodic scrub finds it. Either way the corrupt copy is
// removed, never served, and the next pull returns the right bytes,
// fetched again from the origin.
func TestReliabilityCorruptOnDisk(t *testing.T) {
	t.Run("first serve after restart", func(t *testing.T) {
		origin := t.TempDir()
		// The background scrub crawls (4 KiB per ~1000 s) so that the serve
		// path is what finds the corruption.
		slowScrub := func(c *config.Config) { c.Cache.ScrubRate = 4 }
		a := startAgent(t, origin, slowScrub)
		b, d := randomBlob(31, 3<<20+17)
		pushReplicated(t, a, "corrupt/repo", b, d)
		dataDir := a.cfg.DataDir
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		corruptFile(t, cachedBlobPath(dataDir, d), 1<<20)

		a2 := startAgent(t, origin, slowScrub, func(c *config.Config) { c.DataDir = dataDir })
		if !a2.cas.NeedsVerify(d) {
			t.Fatal("a blob found on disk at start-up is not marked for a check")
		}
		getBlob(t, a2, d, b) // served right: refetched, not the corrupt copy
		waitCommitted(t, a2, d)
		got, err := os.ReadFile(cachedBlobPath(dataDir, d))
		if err != nil || digest.FromBytes(got) != d {
			t.Fatalf("cached copy after the refetch: %d bytes, err %v, digest ok %v", len(got), err, err == nil && digest.FromBytes(got) == d)
		}
		// A blob that was fine is served from the cache after one check.
		good, goodD := randomBlob(32, 1<<20)
		pushReplicated(t, a2, "corrupt/repo", good, goodD)
		getBlob(t, a2, goodD, good)
	})
	t.Run("large blob checked while served", func(t *testing.T) {
		origin := t.TempDir()
		slowScrub := func(c *config.Config) { c.Cache.ScrubRate = 4 }
		a := startAgent(t, origin, slowScrub)
		b, d := randomBlob(34, verifyBeforeServeMax+(16<<20))
		pushReplicated(t, a, "corrupt/repo", b, d)
		dataDir := a.cfg.DataDir
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		corruptFile(t, cachedBlobPath(dataDir, d), int64(len(b))-100)
		a2 := startAgent(t, origin, slowScrub, func(c *config.Config) { c.DataDir = dataDir })

		// The first pull streams at once but is cut before its last byte:
		// the client never holds the corrupt blob as a complete response.
		resp, err := http.Get(a2.url("/v2/corrupt/repo/blobs/" + d.String()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err == nil || len(got) >= len(b) {
			t.Fatalf("first pull of a corrupt large blob: %d, %d of %d bytes, err %v; want a cut response", resp.StatusCode, len(got), len(b), err)
		}
		// The retry gets the blob fetched again.
		getBlobFrom(t, a2, "corrupt/repo", b)
	})
	t.Run("periodic scrub", func(t *testing.T) {
		a := startAgent(t, "", func(c *config.Config) {
			c.Cache.ScrubInterval = config.Duration(200 * time.Millisecond)
			c.Cache.ScrubRate = 0
		})
		b, d := randomBlob(33, 2<<20)
		pushReplicated(t, a, "corrupt/repo", b, d)
		corruptFile(t, cachedBlobPath(a.cfg.DataDir, d), 12345)
		waitFor(t, "the scrub to remove the corrupt blob", 20*time.Second, func() bool {
			_, err := a.cas.Stat(t.Context(), d)
			return errors.Is(err, cas.ErrNotFound)
		})
		if _, err := os.Stat(cachedBlobPath(a.cfg.DataDir, d)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("corrupt file still on disk: %v", err)
		}
		getBlob(t, a, d, b)
	})
}
