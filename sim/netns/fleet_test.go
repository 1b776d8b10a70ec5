package netns_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/sim/netns"
)

// blobStream is size pseudo-random bytes from seed, the same every time.
func blobStream(seed byte, size int64) io.Reader {
	var key [32]byte
	key[0] = seed
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// pullResult is one host's pull of the image.
type pullResult struct {
	bytes   int64
	digest  string
	elapsed time.Duration
	err     error
}

// TestPushOnePullThree runs four real shoal agents, one per network
// namespace, each behind a link capped at 200 Mbit/s each way, sharing a
// file object store. A blob and its manifest are pushed to host 0; hosts 1–3
// pull them at the same moment. Every pull must be byte-identical, no
// faster than the link allows (the shaping is real), and the pullers must
// have fetched from peers (host 0 served bytes over its link).
func TestPushOnePullThree(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const (
		hosts     = 4
		bandwidth = 200 * netns.Mbit
		blobSize  = 48 << 20
		repo      = "netns/app"
	)
	n := newNetwork(t, ctx, netns.Config{Hosts: hosts, Bandwidth: bandwidth, Prefix: "shoal"})
	bin := buildShoal(t, ctx)

	// Host 0 first; the others join its serf address.
	origin := t.TempDir()
	begin := time.Now()
	agents := make([]*agentProc, hosts)
	agents[0] = startAgent(t, ctx, bin, n.Hosts()[0], agentSpec{origin: origin, group: "default"})
	if err := agents[0].waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	seed := n.Hosts()[0].Addr().String() + ":7946"
	for i := 1; i < hosts; i++ {
		agents[i] = startAgent(t, ctx, bin, n.Hosts()[i], agentSpec{origin: origin, group: "default", join: []string{seed}})
	}
	for _, a := range agents[1:] {
		if err := a.waitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		err := poll(ctx, fmt.Sprintf("host %d to see %d alive members and DHT peers", a.host.Index(), hosts), 30*time.Second, func() (bool, error) {
			s, err := a.status(ctx)
			if err != nil {
				return false, err
			}
			alive := 0
			for _, m := range s.Members {
				if m.Status == "alive" {
					alive++
				}
			}
			return s.Ready && alive == hosts && s.DHTPeers > 0, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d agents in %d namespaces (subnet %s) ready and joined in %s",
		hosts, hosts, n.Subnet(), time.Since(begin).Round(time.Millisecond))

	// Push the blob, a config and a manifest to host 0.
	h := sha256.New()
	if _, err := io.Copy(h, blobStream(1, blobSize)); err != nil {
		t.Fatal(err)
	}
	layer := "sha256:" + hex.EncodeToString(h.Sum(nil))
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	configDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	begin = time.Now()
	pushBlob(t, ctx, agents[0], repo, blobStream(1, blobSize), blobSize, layer)
	pushBlob(t, ctx, agents[0], repo, bytes.NewReader(config), int64(len(config)), configDigest)
	t.Logf("pushed %d MiB to host 0 in %s", blobSize>>20, time.Since(begin).Round(time.Millisecond))
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": blobSize}},
	})
	if err != nil {
		t.Fatal(err)
	}
	putManifest(t, ctx, agents[0], repo, "v1", manifest)
	// Tags resolve against the object store on the other hosts.
	err = poll(ctx, "host 0's outbox to drain", 30*time.Second, func() (bool, error) {
		s, err := agents[0].status(ctx)
		return err == nil && s.OutboxPending == 0, err
	})
	if err != nil {
		t.Fatal(err)
	}

	// Hosts 1–3 pull at once.
	bound := time.Duration(blobSize * 8 * int64(time.Second) / bandwidth)
	results := make([]pullResult, hosts)
	var wg sync.WaitGroup
	begin = time.Now()
	for i := 1; i < hosts; i++ {
		wg.Go(func() { results[i] = pull(ctx, agents[i], repo, "v1", manifest, layer) })
	}
	wg.Wait()
	all := time.Since(begin)

	var peerBytes, originBytes float64
	for i := 1; i < hosts; i++ {
		r := results[i]
		if r.err != nil {
			t.Fatalf("host %d pull: %v", i, r.err)
		}
		if r.bytes != blobSize || r.digest != layer {
			t.Fatalf("host %d served %d bytes hashing to %s, want %d bytes of %s", i, r.bytes, r.digest, blobSize, layer)
		}
		peer, err := agents[i].metric(ctx, "shoal_fetch_bytes_total", `source="peer"`)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := agents[i].metric(ctx, "shoal_fetch_bytes_total", `source="origin"`)
		if err != nil {
			t.Fatal(err)
		}
		peerBytes, originBytes = peerBytes+peer, originBytes+orig
		t.Logf("host %d: %d MiB in %s (%.0f Mbit/s, %.2f× the %s bound at %d Mbit/s); fetched %.0f bytes from peers, %.0f from the object store",
			i, blobSize>>20, r.elapsed.Round(time.Millisecond), float64(blobSize)*8/r.elapsed.Seconds()/1e6,
			r.elapsed.Seconds()/bound.Seconds(), bound, bandwidth/netns.Mbit, peer, orig)
		if r.elapsed < bound*9/10 {
			t.Errorf("host %d pulled in %s, faster than its %d Mbit/s link allows (%s): links not shaped", i, r.elapsed, bandwidth/netns.Mbit, bound)
		}
	}
	served, err := agents[0].metric(ctx, "shoal_peer_bytes_served_total", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d concurrent pulls done in %s; peers served %.0f bytes to the pullers, host 0 %.0f of them (%.2f× the blob), the object store %.0f",
		hosts-1, all.Round(time.Millisecond), peerBytes, served, served/blobSize, originBytes)
	if peerBytes < blobSize {
		t.Errorf("the pullers fetched %.0f bytes from peers, want at least one blob (%d)", peerBytes, blobSize)
	}
	if served == 0 {
		t.Error("host 0 served no bytes to peers")
	}
	if originBytes > blobSize+64<<10 {
		t.Errorf("the object store served %.0f bytes to one group, more than the blob (%d)", originBytes, blobSize)
	}
}

// pushBlob uploads size bytes from r monolithically (POST ?digest=).
func pushBlob(t *testing.T, ctx context.Context, a *agentProc, repo string, r io.Reader, size int64, digest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=%s", a.registry, repo, digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push %s: %v", digest, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push %s: %s: %s", digest, resp.Status, body)
	}
}

// putManifest PUTs an OCI image manifest as repo:tag.
func putManifest(t *testing.T, ctx context.Context, a *agentProc, repo, tag string, manifest []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/%s", a.registry, repo, tag), bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("put manifest: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %s: %s", resp.Status, body)
	}
}

// pull GETs repo:tag's manifest from a (it must equal manifest), then the
// layer, hashing it as it streams, and times both.
func pull(ctx context.Context, a *agentProc, repo, tag string, manifest []byte, layer string) pullResult {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	begin := time.Now()
	got, err := httpGetAccept(ctx, fmt.Sprintf("%s/v2/%s/manifests/%s", a.registry, repo, tag), "application/vnd.oci.image.manifest.v1+json")
	if err != nil {
		return pullResult{err: err}
	}
	if !bytes.Equal(got, manifest) {
		return pullResult{err: fmt.Errorf("manifest %s:%s differs from the one pushed: %s", repo, tag, got)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v2/%s/blobs/%s", a.registry, repo, layer), nil)
	if err != nil {
		return pullResult{err: err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pullResult{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pullResult{err: fmt.Errorf("GET blob %s: %s", layer, resp.Status)}
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return pullResult{err: fmt.Errorf("read blob %s after %d bytes: %w", layer, n, err)}
	}
	return pullResult{bytes: n, digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), elapsed: time.Since(begin)}
}

// httpGetAccept returns the body of a 200 response to a GET with an Accept header.
func httpGetAccept(ctx context.Context, url, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}
