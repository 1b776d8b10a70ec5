package registryapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

// The fixture: repository library/alpine holds a layer, a config, an image
// manifest tagged "latest" and a signature artifact whose subject is that
// manifest; other/repo holds one blob; an upload session in library/alpine
// holds "abc".
const (
	fxRepo      = "library/alpine"
	fxOtherRepo = "other/repo"
	fxSigType   = "application/vnd.example.signature.v1"
	// fxMaxManifest is the fixture handler's manifest limit.
	fxMaxManifest = 64 << 10
)

var (
	fxLayer        = []byte("hello, layer contents 0123456789")
	fxLayerD       = digest.FromBytes(fxLayer)
	fxConfig       = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	fxOther        = []byte("a blob only other/repo holds")
	fxOtherD       = digest.FromBytes(fxOther)
	fxEmpty        = []byte("{}")
	fxMissingD     = digest.FromString("nobody pushed this")
	fxManifest     = imageManifest(ocispec.MediaTypeImageManifest, nil, desc(ocispec.MediaTypeImageConfig, fxConfig), desc(ocispec.MediaTypeImageLayer, fxLayer))
	fxManifestD    = digest.FromBytes(fxManifest)
	fxManifestDesc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: fxManifestD, Size: int64(len(fxManifest))}
	fxSig          = artifactManifest(fxSigType, &fxManifestDesc)
	fxSigD         = digest.FromBytes(fxSig)
)

// desc describes content with a media type.
func desc(mediaType string, content []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(content), Size: int64(len(content))}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// imageManifest builds an image manifest; mediaType "" omits the field.
func imageManifest(mediaType string, subject *ocispec.Descriptor, config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	return mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mediaType,
		Config:    config,
		Layers:    layers,
		Subject:   subject,
	})
}

// artifactManifest builds an artifact with the empty config and no layers.
func artifactManifest(artifactType string, subject *ocispec.Descriptor) []byte {
	return mustJSON(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{},
		Subject:      subject,
		Annotations:  map[string]string{"org.example.signer": "test"},
	})
}

// index builds an OCI image index over manifests.
func index(manifests ...ocispec.Descriptor) []byte {
	if manifests == nil {
		manifests = []ocispec.Descriptor{}
	}
	return mustJSON(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
}

// fixture is a server over a seeded memory backend.
type fixture struct {
	srv      *httptest.Server
	backend  *memory.Backend
	uploadID string
}

// newFixture starts a seeded server for one test.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := memory.New()
	opts := registryapi.DefaultOptions()
	opts.MaxManifestBytes = fxMaxManifest
	srv := httptest.NewServer(registryapi.NewHandler(b, opts))
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, backend: b}

	b.PutBlob(fxRepo, fxLayer)
	b.PutBlob(fxRepo, fxConfig)
	b.PutBlob(fxRepo, fxEmpty)
	b.PutBlob(fxOtherRepo, fxOther)
	f.mustStatus(t, "PUT", "/v2/"+fxRepo+"/manifests/latest", ocispec.MediaTypeImageManifest, fxManifest, http.StatusCreated)
	f.mustStatus(t, "PUT", "/v2/"+fxRepo+"/manifests/"+fxSigD.String(), ocispec.MediaTypeImageManifest, fxSig, http.StatusCreated)
	f.newUpload(t)
	return f
}

// newUpload opens a session holding "abc" and makes it the fixture's.
func (f *fixture) newUpload(t *testing.T) {
	t.Helper()
	up, err := f.backend.StartUpload(context.Background(), fxRepo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Append(context.Background(), strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	f.uploadID = up.ID()
}

// do sends a request to the fixture.
func (f *fixture) do(t *testing.T, method, path string, hdr http.Header, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (f *fixture) mustStatus(t *testing.T, method, path, contentType string, body []byte, want int) {
	t.Helper()
	resp := f.do(t, method, path, http.Header{"Content-Type": {contentType}}, bytes.NewReader(body))
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
}

// errorCode returns the first OCI error code in a body, or "".
func errorCode(body []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}
