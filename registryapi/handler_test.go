package registryapi_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// call is one HTTP exchange: the request and what the response must show.
type call struct {
	name   string
	method string
	// path may hold {upload}, replaced by the fixture's upload session id.
	path    string
	header  http.Header
	body    string
	chunked bool // send the body without a Content-Length
	status  int
	code    string // OCI error code, "" for none
	// wantHeader values must match exactly; "*" only requires presence.
	wantHeader map[string]string
	wantBody   string // substring of the body
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// run performs c against f and checks the response.
func (c call) run(t *testing.T, f *fixture) {
	t.Helper()
	path := strings.ReplaceAll(c.path, "{upload}", f.uploadID)
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			body = struct{ io.Reader }{body}
		}
	}
	resp := f.do(t, c.method, path, c.header, body)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != c.status {
		t.Errorf("status %d, want %d; body %s", resp.StatusCode, c.status, got)
	}
	if code := errorCode(got); code != c.code {
		t.Errorf("error code %q, want %q; body %s", code, c.code, got)
	}
	for k, want := range c.wantHeader {
		v := resp.Header.Get(k)
		if want == "*" && v == "" || want != "*" && v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if c.wantBody != "" && !bytes.Contains(got, []byte(c.wantBody)) {
		t.Errorf("body %q does not contain %q", got, c.wantBody)
	}
}

// TestCalls runs every call against a fresh fixture.
func TestCalls(t *testing.T) {
	t.Parallel()
	cases := calls()
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newFixture(t))
		})
	}
}

// TestBadInputThenPull sends every failing call to one server, then pulls
// the image: bad input leaves the registry serving.
func TestBadInputThenPull(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, c := range calls() {
		if c.status < 400 {
			continue
		}
		f.newUpload(t) // calls assume a session holding "abc"
		t.Run(c.name, func(t *testing.T) { c.run(t, f) })
	}
	pull(t, f, fxRepo, "latest")
}

// pull fetches a manifest and every blob it names, checking digests.
func pull(t *testing.T, f *fixture, repo, tag string) {
	t.Helper()
	get := func(path string) []byte {
		resp := f.do(t, "GET", path, hdr("Accept", ocispec.MediaTypeImageManifest), nil)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
		}
		if d := resp.Header.Get("Docker-Content-Digest"); d != digest.FromBytes(b).String() {
			t.Fatalf("GET %s: Docker-Content-Digest %s does not match content", path, d)
		}
		return b
	}
	var m ocispec.Manifest
	if err := jsonUnmarshal(get("/v2/"+repo+"/manifests/"+tag), &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if b := get("/v2/" + repo + "/blobs/" + d.Digest.String()); int64(len(b)) != d.Size {
			t.Fatalf("blob %s: %d bytes, want %d", d.Digest, len(b), d.Size)
		}
	}
}

// sha512Of is the sha512 digest of s.
func sha512Of(s string) digest.Digest {
	sum := sha512.Sum512([]byte(s))
	return digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
}

func blobPath(d digest.Digest) string { return "/v2/" + fxRepo + "/blobs/" + d.String() }

func manifestPath(ref string) string { return "/v2/" + fxRepo + "/manifests/" + ref }

func uploadPath(rest string) string { return "/v2/" + fxRepo + "/blobs/uploads/" + rest }

var (
	ctOCIManifest = hdr("Content-Type", ocispec.MediaTypeImageManifest)
	ctOCIIndex    = hdr("Content-Type", ocispec.MediaTypeImageIndex)
	layerLen      = fmt.Sprint(len(fxLayer))
)
