package agent

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/locks"
)

// manifestRequest sends method for repo:tag's manifest to a and checks 200.
func manifestRequest(t *testing.T, a *testAgent, method, repo, tag string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, a.url("/v2/"+repo+"/manifests/"+tag), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s manifest: %d", method, resp.StatusCode)
	}
}

// cachedOf counts the digests a's cache holds.
func cachedOf(a *testAgent, ds []digest.Digest) int {
	n := 0
	for _, d := range ds {
		if _, err := a.cas.Stat(context.Background(), d); err == nil {
			n++
		}
	}
	return n
}

// TestReadAheadReadsOneLayerBeforeItIsAsked: a GET of an image manifest
// makes the host read one of its layers from the origin (it won the
// layer's fetch lock and no host had it) before any client asks for a
// layer; a HEAD does not, nor a host with read_ahead off, and a host
// reads at most one layer ahead.
func TestReadAheadReadsOneLayerBeforeItIsAsked(t *testing.T) {
	if testing.Short() {
		t.Skip("serf fleet: not in -short")
	}
	t.Parallel()
	origin := t.TempDir()
	pusher := startAgent(t, origin, func(c *config.Config) { c.P2P.Enabled, c.Serf.Enabled = false, false })
	img := pushImage(t, pusher, "ra/app", 256<<10, 4)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var layers []digest.Digest
	sizes := map[digest.Digest]int64{}
	for _, l := range ls {
		h, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		d := digest.Digest(h.String())
		layers = append(layers, d)
		sizes[d] = size
	}
	fleet := startSerfFleet(t, origin, []string{"g", "g", "g"})
	// Read-ahead tries each lock once: wait until the group's proxy grants
	// locks (a new proxy grants nothing during its grace period). The proxy
	// does not read ahead; the other two do.
	var reader, off *testAgent
	waitFor(t, "the lock proxy granting locks", 30*time.Second, func() bool {
		reader, off = nil, nil
		for _, a := range fleet {
			switch {
			case a.fetch.Load().yield():
			case reader == nil:
				reader = a
			default:
				off = a
			}
		}
		if reader == nil || off == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		l, err := reader.fetch.Load().locker.Acquire(ctx, "test/ready", locks.AcquireOptions{})
		if err != nil {
			return false
		}
		l.Release(ctx)
		return true
	})
	off.registry.readAhead = false // before its first request

	manifestRequest(t, reader, http.MethodHead, "ra/app", "latest")
	manifestRequest(t, off, http.MethodGet, "ra/app", "latest")
	time.Sleep(time.Second)
	if n := cachedOf(reader, layers) + cachedOf(off, layers); n != 0 {
		t.Fatalf("%d layers cached after a HEAD and a GET with read-ahead off, want 0", n)
	}

	manifestRequest(t, reader, http.MethodGet, "ra/app", "latest")
	waitFor(t, "a layer read ahead", 20*time.Second, func() bool { return cachedOf(reader, layers) > 0 })
	// Anything else it started would be in progress by now.
	time.Sleep(500 * time.Millisecond)
	var read []digest.Digest
	for _, d := range layers {
		if _, err := reader.cas.Stat(t.Context(), d); err == nil || reader.cas.Writing(d) {
			read = append(read, d)
		}
	}
	if len(read) != 1 {
		t.Fatalf("%d layers read ahead, want 1 (one per host)", len(read))
	}
	// The GET read the manifest from the origin, the read-ahead the layer.
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reader.metric(t, `shoal_fetch_bytes_total{source="origin"}`), float64(len(raw))+float64(sizes[read[0]]); got != want {
		t.Fatalf("origin bytes %v, want the manifest's and the layer's %v", got, want)
	}
	if n := cachedOf(off, layers); n != 0 {
		t.Fatalf("the host with read-ahead off cached %d layers", n)
	}
}

// TestManifestLayers: the layers of an image manifest, none of an index
// or of something that does not parse; invalid digests are skipped.
func TestManifestLayers(t *testing.T) {
	const a = "sha256:" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"schemaVersion":2,"config":{"digest":"` + a + `"},"layers":[{"digest":"` + a + `"},{"digest":"sha256:zz"}]}`, 1},
		{`{"schemaVersion":2,"manifests":[{"digest":"` + a + `"}],"layers":[{"digest":"` + a + `"}]}`, 0},
		{`not json`, 0},
	} {
		if got := manifestLayers([]byte(tc.body)); len(got) != tc.want {
			t.Errorf("manifestLayers(%s) = %v, want %d layers", tc.body, got, tc.want)
		}
	}
}
