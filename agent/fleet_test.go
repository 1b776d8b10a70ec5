package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
)

// tcpAddr returns the agent's loopback TCP multiaddr with its peer ID.
func tcpAddr(t testing.TB, a *testAgent) string {
	t.Helper()
	for _, addr := range a.node.Addrs() {
		if strings.Contains(addr, "/tcp/") {
			return addr
		}
	}
	t.Fatalf("agent has no TCP address: %v", a.node.Addrs())
	return ""
}

// startPeers starts n agents on origin, each bootstrapped to boot, and
// waits until every one has DHT peers.
func startPeers(t testing.TB, n int, origin string, boot *testAgent) []*testAgent {
	t.Helper()
	out := make([]*testAgent, n)
	for i := range out {
		out[i] = startAgent(t, origin, func(c *config.Config) {
			c.P2P.Bootstrap = []string{tcpAddr(t, boot)}
			c.NodeName = fmt.Sprintf("peer-%d", i)
		})
	}
	for _, a := range append(out, boot) {
		waitFor(t, "dht peers", 20*time.Second, func() bool { return a.node.Stats().RoutingTablePeers > 0 })
	}
	return out
}

// pushImage writes a random image to agent a as repo:tag and waits until
// it is replicated and announced.
func pushImage(t testing.TB, a *testAgent, repo string, layerSize int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(a.RegistryAddr()+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replication", 30*time.Second, func() bool { return a.outbox.Pending() == 0 })
	return img
}

// pullImage reads every blob of ref from agent a and returns digest → sha256 of the bytes.
func pullImage(ctx context.Context, a *testAgent, ref string) (map[string]string, error) {
	r, err := name.ParseReference(a.RegistryAddr()+"/"+ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d, err)
		}
		out[d.String()] = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	out["config"] = digest.FromBytes(cfg).String()
	return out, nil
}

// TestFleetPull: an image pushed to A is pulled by four agents at once;
// every pull is byte-identical and the object store is read at most once
// per blob across the four (they get the bytes from peers).
func TestFleetPull(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	origin := t.TempDir()
	a := startAgent(t, origin)
	peers := startPeers(t, 4, origin, a)
	const layerSize, layers = 4 << 20, 4
	img := pushImage(t, a, "fleet/app:v1", layerSize, layers)
	want, err := pullImage(t.Context(), a, "fleet/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if k != "config" && k != v {
			t.Fatalf("agent A serves layer %s with bytes hashing to %s", k, v)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(peers))
	for i, p := range peers {
		wg.Go(func() {
			got, err := pullImage(t.Context(), p, "fleet/app:v1")
			if err == nil && fmt.Sprint(got) != fmt.Sprint(want) {
				err = fmt.Errorf("pulled %v, want %v", got, want)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var originBytes, peerBytes float64
	for i, p := range peers {
		if errs[i] != nil {
			t.Fatalf("pull from peer %d: %v", i, errs[i])
		}
		originBytes += p.metric(t, `shoal_fetch_bytes_total{source="origin"}`)
		peerBytes += p.metric(t, `shoal_fetch_bytes_total{source="peer"}`)
	}
	var imageBytes int64
	ls, _ := img.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		imageBytes += n
	}
	t.Logf("4 agents pulled %d image bytes: %.0f from the origin, %.0f from peers", imageBytes, originBytes, peerBytes)
	if originBytes > float64(imageBytes)+64<<10 {
		t.Fatalf("the object store served %.0f bytes to the fleet, more than the image (%d)", originBytes, imageBytes)
	}
	if peerBytes < float64(imageBytes) {
		t.Fatalf("peers served %.0f bytes, want at least one image (%d)", peerBytes, imageBytes)
	}
	if served := a.metric(t, "shoal_peer_bytes_served_total"); served == 0 {
		t.Fatal("agent A served no bytes to peers")
	}

	// An agent whose object store never saw the image pulls it by digest from peers.
	empty := startPeers(t, 1, t.TempDir(), a)[0]
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	got, err := pullImage(t.Context(), empty, "fleet/app@"+d.String())
	if err != nil {
		t.Fatalf("pull by digest with an empty object store: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pulled %v, want %v", got, want)
	}
	if o := empty.metric(t, `shoal_fetch_bytes_total{source="origin"}`); o != 0 {
		t.Fatalf("agent with an empty object store read %v bytes from it", o)
	}
}

// getWithRetry GETs a blob, retrying when the connection is cut (as a
// client does), and returns the bytes of the first complete 200 response.
func getWithRetry(t *testing.T, a *testAgent, path string, attempts int) []byte {
	t.Helper()
	var last error
	for range attempts {
		resp, err := http.Get(a.url(path))
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return body
	}
	t.Fatalf("GET %s failed %d times: %v", path, attempts, last)
	return nil
}

// TestCorruptPeer: a provider that serves corrupted bytes does not make
// another agent store or serve corrupt data; the pull succeeds from an
// honest source and the liar is banned.
func TestCorruptPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	origin := t.TempDir()
	honest := startAgent(t, origin)
	peers := startPeers(t, 2, origin, honest)
	liar, victim := peers[0], peers[1]
	blob, d := randomBlob(77, 40<<20)
	if code := pushBlob(t, "http://"+honest.RegistryAddr(), "corrupt/repo", blob, d); code != http.StatusCreated {
		t.Fatalf("push: %d", code)
	}
	waitFor(t, "replication", 30*time.Second, func() bool { return honest.outbox.Pending() == 0 })
	if got := getWithRetry(t, liar, "/v2/corrupt/repo/blobs/"+d.String(), 3); !bytes.Equal(got, blob) {
		t.Fatal("liar pulled wrong bytes")
	}
	waitCommitted(t, liar, d)
	// Corrupt the liar's copy behind its back: one byte in every MiB.
	path := filepath.Join(liar.cfg.DataDir, "cas", "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(512 << 10); off < int64(len(blob)); off += 1 << 20 {
		if _, err := f.WriteAt([]byte{^blob[off]}, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	waitFor(t, "two providers", 20*time.Second, func() bool {
		provs, _ := victim.node.FindProviders(t.Context(), d, 4)
		return len(provs) >= 2
	})
	got := getWithRetry(t, victim, "/v2/corrupt/repo/blobs/"+d.String(), 4)
	if !bytes.Equal(got, blob) {
		t.Fatal("victim served corrupt bytes as a complete response")
	}
	// What the victim committed verifies, and it serves it intact.
	waitCommitted(t, victim, d)
	info, err := victim.cas.Stat(t.Context(), d)
	if err != nil || info.Size != int64(len(blob)) {
		t.Fatalf("victim cache: %+v, %v", info, err)
	}
	if got := getWithRetry(t, victim, "/v2/corrupt/repo/blobs/"+d.String(), 1); !bytes.Equal(got, blob) {
		t.Fatal("victim's cached copy is corrupt")
	}
	score := victim.node.Score(liar.node.ID())
	peerBytes := victim.metric(t, `shoal_fetch_bytes_total{source="peer"}`)
	t.Logf("liar score at victim: %+v; victim fetched %.0f bytes from peers", score, peerBytes)
	if score.BannedUntil.IsZero() && peerBytes > float64(len(blob)) {
		t.Fatal("the victim re-fetched after corrupt bytes but did not ban the liar")
	}
}

// TestFirstByteBeforeCompletion: a client pulling a 1 GiB blob that is
// still arriving from a peer receives its first bytes before the blob is
// complete (ordering, not timing).
func TestFirstByteBeforeCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB transfer: not in -short")
	}
	origin := t.TempDir()
	src := startAgent(t, origin)
	dst := startPeers(t, 1, origin, src)[0]
	const size = 1 << 30
	d := seedCache(t, src, size)
	waitFor(t, "provider record", 20*time.Second, func() bool {
		provs, _ := dst.node.FindProviders(t.Context(), d, 1)
		return len(provs) > 0
	})
	resp, err := http.Get(dst.url("/v2/big/blob/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.cas.Stat(t.Context(), d); err == nil {
		t.Fatal("the blob was already complete when the client got its first bytes")
	}
	h := sha256.New()
	h.Write(first)
	n, err := io.Copy(h, resp.Body)
	if err != nil || n+int64(len(first)) != size {
		t.Fatalf("read %d bytes: %v", n+int64(len(first)), err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != d {
		t.Fatalf("received %s, want %s", got, d)
	}
	if p := dst.metric(t, `shoal_fetch_bytes_total{source="peer"}`); p < size {
		t.Fatalf("peer bytes %v, want the whole blob from the peer", p)
	}
}
