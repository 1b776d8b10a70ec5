package upstream_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/agent/upstream"
	"github.com/shoal-dev/shoal/agent/upstream/registrytest"
)

// TestPull reads images a real registry holds: tags, manifests by digest,
// indexes, whole and ranged blobs, sizes, and the not-found cases.
func TestPull(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, "")
	p := newPusher(t, reg.Addr(), nil)
	img := p.image(t, "team/app:v1", 2)
	idx := p.index(t, "team/multi:latest", 2)
	c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true})

	imgDigest, _ := img.Digest()
	rawManifest, _ := img.RawManifest()
	imgMediaType, _ := img.MediaType()
	layer, layerDigest := layerBytes(t, img, 1)

	t.Run("resolve tag", func(t *testing.T) {
		t.Parallel()
		desc, err := c.Resolve(t.Context(), "team/app", "v1")
		if err != nil {
			t.Fatal(err)
		}
		want := ocispec.Descriptor{MediaType: string(imgMediaType), Digest: toDigest(imgDigest), Size: int64(len(rawManifest))}
		if desc.MediaType != want.MediaType || desc.Digest != want.Digest || desc.Size != want.Size {
			t.Fatalf("Resolve = %+v, want %+v", desc, want)
		}
	})
	t.Run("resolve by digest", func(t *testing.T) {
		t.Parallel()
		desc, err := c.Resolve(t.Context(), "team/app", imgDigest.String())
		if err != nil || desc.Digest != toDigest(imgDigest) {
			t.Fatalf("Resolve(digest) = %v, %v", desc.Digest, err)
		}
	})
	t.Run("manifest by digest", func(t *testing.T) {
		t.Parallel()
		mt, body, err := c.Manifest(t.Context(), "team/app", toDigest(imgDigest))
		if err != nil {
			t.Fatal(err)
		}
		if mt != string(imgMediaType) || !bytes.Equal(body, rawManifest) {
			t.Fatalf("Manifest = %q, %d bytes; want %q, %d bytes", mt, len(body), imgMediaType, len(rawManifest))
		}
	})
	t.Run("index", func(t *testing.T) {
		t.Parallel()
		idxDigest, _ := idx.Digest()
		idxMediaType, _ := idx.MediaType()
		desc, err := c.Resolve(t.Context(), "team/multi", "latest")
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != toDigest(idxDigest) || desc.MediaType != string(idxMediaType) {
			t.Fatalf("Resolve(index) = %+v, want %s %s", desc, idxDigest, idxMediaType)
		}
		mt, _, err := c.Manifest(t.Context(), "team/multi", desc.Digest)
		if err != nil || mt != string(idxMediaType) {
			t.Fatalf("Manifest(index) = %q, %v", mt, err)
		}
		im, _ := idx.IndexManifest()
		for _, child := range im.Manifests {
			mt, body, err := c.Manifest(t.Context(), "team/multi", toDigest(child.Digest))
			if err != nil || mt != string(child.MediaType) || int64(len(body)) != child.Size {
				t.Fatalf("Manifest(child %s) = %q, %d bytes, %v", child.Digest, mt, len(body), err)
			}
		}
	})
	t.Run("blob whole", func(t *testing.T) {
		t.Parallel()
		rc, size, err := c.Blob(t.Context(), "team/app", layerDigest, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); size != int64(len(layer)) || !bytes.Equal(got, layer) {
			t.Fatalf("Blob = %d bytes (size %d), want %d", len(got), size, len(layer))
		}
	})
	t.Run("blob ranged", func(t *testing.T) {
		t.Parallel()
		for _, off := range []int64{1, int64(len(layer)) / 2, int64(len(layer)) - 1} {
			rc, size, err := c.Blob(t.Context(), "team/app", layerDigest, off)
			if err != nil {
				t.Fatalf("offset %d: %v", off, err)
			}
			if got := readAll(t, rc); size != int64(len(layer)) || !bytes.Equal(got, layer[off:]) {
				t.Fatalf("offset %d: %d bytes (size %d), want %d of %d", off, len(got), size, len(layer)-int(off), len(layer))
			}
		}
	})
	t.Run("blob offset past end", func(t *testing.T) {
		t.Parallel()
		_, _, err := c.Blob(t.Context(), "team/app", layerDigest, int64(len(layer))+10)
		if err == nil {
			t.Fatal("Blob past the end succeeded")
		}
	})
	t.Run("stat blob", func(t *testing.T) {
		t.Parallel()
		size, err := c.StatBlob(t.Context(), "team/app", layerDigest)
		if err != nil || size != int64(len(layer)) {
			t.Fatalf("StatBlob = %d, %v; want %d", size, err, len(layer))
		}
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		missing := digest.FromString("not pushed anywhere")
		ctx := t.Context()
		checks := map[string]func() error{
			"tag":             func() error { _, err := c.Resolve(ctx, "team/app", "v2"); return err },
			"repository":      func() error { _, err := c.Resolve(ctx, "team/none", "v1"); return err },
			"manifest":        func() error { _, _, err := c.Manifest(ctx, "team/app", missing); return err },
			"manifest (repo)": func() error { _, _, err := c.Manifest(ctx, "team/none", toDigest(imgDigest)); return err },
			"blob":            func() error { _, _, err := c.Blob(ctx, "team/app", missing, 0); return err },
			"blob ranged":     func() error { _, _, err := c.Blob(ctx, "team/app", missing, 5); return err },
			"stat blob":       func() error { _, err := c.StatBlob(ctx, "team/app", missing); return err },
		}
		for name, check := range checks {
			if err := check(); !errors.Is(err, upstream.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("invalid input sends nothing", func(t *testing.T) {
		t.Parallel()
		ct := newCountingTransport(t)
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, Transport: ct})
		ctx := t.Context()
		bad := map[string]func() error{
			"repo ..":        func() error { _, err := c.Resolve(ctx, "../etc", "v1"); return err },
			"repo upper":     func() error { _, err := c.Resolve(ctx, "Team/App", "v1"); return err },
			"tag slash":      func() error { _, err := c.Resolve(ctx, "team/app", "v1/../x"); return err },
			"digest":         func() error { _, _, err := c.Manifest(ctx, "team/app", "sha256:abc"); return err },
			"blob digest":    func() error { _, _, err := c.Blob(ctx, "team/app", "md5:00", 0); return err },
			"blob negative":  func() error { _, _, err := c.Blob(ctx, "team/app", layerDigest, -1); return err },
			"stat repo path": func() error { _, err := c.StatBlob(ctx, "team//app", layerDigest); return err },
		}
		for name, f := range bad {
			if err := f(); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		if n := ct.total.Load(); n != 0 {
			t.Fatalf("%d requests sent for invalid input", n)
		}
	})
}

// TestTagCache checks that a resolution is reused for the TTL without a
// request, and asked again once it has expired.
func TestTagCache(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, "")
	p := newPusher(t, reg.Addr(), nil)
	first := p.image(t, "cache/app:v1", 1)
	firstDigest, _ := first.Digest()

	ct := newCountingTransport(t)
	c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, TagTTL: time.Hour, Transport: ct})
	for range 3 {
		desc, err := c.Resolve(t.Context(), "cache/app", "v1")
		if err != nil || desc.Digest != toDigest(firstDigest) {
			t.Fatalf("Resolve = %v, %v", desc.Digest, err)
		}
	}
	if n := ct.total.Load(); n != 1 {
		t.Fatalf("3 resolutions within the TTL made %d requests, want 1", n)
	}

	// The tag moves: the cached answer holds until it expires, a client
	// whose TTL is (practically) zero sees the move at once.
	second := p.image(t, "cache/app:v1", 1)
	secondDigest, _ := second.Digest()
	if desc, _ := c.Resolve(t.Context(), "cache/app", "v1"); desc.Digest != toDigest(firstDigest) || ct.total.Load() != 1 {
		t.Fatalf("within TTL: Resolve = %s after %d requests", desc.Digest, ct.total.Load())
	}
	ct2 := newCountingTransport(t)
	fresh := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, TagTTL: time.Nanosecond, Transport: ct2})
	for i := range 2 {
		desc, err := fresh.Resolve(t.Context(), "cache/app", "v1")
		if err != nil || desc.Digest != toDigest(secondDigest) {
			t.Fatalf("Resolve = %v, %v; want %s", desc.Digest, err, secondDigest)
		}
		if n := ct2.total.Load(); n != int64(i+1) {
			t.Fatalf("expired resolution %d: %d requests", i+1, n)
		}
	}
	if ct2.statusCount(http.StatusOK) != 2 {
		t.Fatalf("responses: %v", ct2.status)
	}
}
