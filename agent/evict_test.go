package agent

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
)

// getBlob fetches a blob through the registry API and checks its bytes.
func getBlob(t *testing.T, a *testAgent, d digest.Digest, want []byte) {
	t.Helper()
	resp, err := http.Get(a.url("/v2/evict/repo/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET %s: status %d, %d bytes, err %v", d, resp.StatusCode, len(body), err)
	}
}

// TestEviction pulls more than the cache holds: least-recently-used blobs
// go down to the low watermark, pinned and unreplicated ones stay, and an
// evicted blob is fetched again on demand.
func TestEviction(t *testing.T) {
	ctx := context.Background()
	origin := t.TempDir()
	store, err := filestore.New(origin)
	if err != nil {
		t.Fatal(err)
	}
	const blobSize, n = 3 << 20, 8
	blobs := make([][]byte, n)
	digests := make([]digest.Digest, n)
	for i := range n {
		blobs[i], digests[i] = randomBlob(uint64(1000+i), blobSize)
		if err := store.Put(ctx, objstore.BlobKey(digests[i]), bytes.NewReader(blobs[i]), blobSize); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, origin, func(c *config.Config) {
		c.Cache.MaxBytes = 16 << 20 // high 14.4 MiB, low 12 MiB
	})
	// Blob 0 is pinned, blob 1 is marked unreplicated: both are the oldest,
	// so plain LRU would take them first.
	for i := range 2 {
		getBlob(t, a, digests[i], blobs[i])
	}
	if err := a.cas.Pin(ctx, digests[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.cas.SetState(ctx, digests[1], cas.StateLocal); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < n; i++ {
		time.Sleep(5 * time.Millisecond) // distinct access times
		getBlob(t, a, digests[i], blobs[i])
		waitCommitted(t, a, digests[i])
	}
	u := a.cas.Usage()
	waitFor(t, "usage under the high watermark", 10*time.Second, func() bool {
		u = a.cas.Usage()
		return u.Bytes <= u.High
	})
	if u.Bytes > u.Low {
		t.Fatalf("usage %d after eviction, want <= low watermark %d", u.Bytes, u.Low)
	}
	if got := a.metric(t, "shoal_cache_evictions_total"); got < 1 {
		t.Fatalf("shoal_cache_evictions_total = %v, want >= 1", got)
	}
	for i, d := range digests[:2] {
		if _, err := a.cas.Stat(ctx, d); err != nil {
			t.Fatalf("protected blob %d was evicted: %v", i, err)
		}
	}
	// LRU: the oldest evictable blobs (2, 3, ...) went first, the newest stayed.
	if _, err := a.cas.Stat(ctx, digests[2]); err == nil {
		t.Fatal("blob 2, the least recently used evictable blob, is still cached")
	}
	if _, err := a.cas.Stat(ctx, digests[n-1]); err != nil {
		t.Fatalf("the most recently used blob was evicted: %v", err)
	}
	before := a.metric(t, `shoal_fetch_bytes_total{source="origin"}`)
	getBlob(t, a, digests[2], blobs[2])
	if after := a.metric(t, `shoal_fetch_bytes_total{source="origin"}`); after-before != blobSize {
		t.Fatalf("refetch of an evicted blob brought %v bytes from the origin, want %d", after-before, blobSize)
	}
}
