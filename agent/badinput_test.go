package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestBadInput sends hostile and malformed requests to a real agent: each
// gets its OCI error, and the agent keeps serving a normal pull.
func TestBadInput(t *testing.T) {
	a := startAgent(t, "")
	good, goodD := randomBlob(7, 4096)
	if code := pushBlob(t, "http://"+a.RegistryAddr(), "bad/repo", good, goodD); code != http.StatusCreated {
		t.Fatalf("seed push: %d", code)
	}
	wrongD := digest.FromString("something else")
	bigManifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"` +
		strings.Repeat("a", 5<<20) + `"}}`
	ociManifest := "application/vnd.oci.image.manifest.v1+json"

	// An upload session for the chunk-order cases.
	resp, err := http.Post(a.url("/v2/bad/repo/blobs/uploads/"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	session := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || session == "" {
		t.Fatalf("start upload: %d %q", resp.StatusCode, session)
	}

	cases := []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		code               string
	}{
		{"traversal name", "GET", "/v2/../../etc/passwd/manifests/latest", nil, "", 400, "NAME_INVALID"},
		{"dot segment name", "GET", "/v2/bad/../repo/blobs/" + goodD.String(), nil, "", 0, ""},
		{"uppercase name", "GET", "/v2/Bad/Repo/manifests/latest", nil, "", 400, "NAME_INVALID"},
		{"malformed digest", "GET", "/v2/bad/repo/blobs/sha256:xyz", nil, "", 400, "DIGEST_INVALID"},
		{"unknown algorithm", "GET", "/v2/bad/repo/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", nil, "", 400, "DIGEST_INVALID"},
		{"unknown blob", "GET", "/v2/bad/repo/blobs/" + wrongD.String(), nil, "", 404, "BLOB_UNKNOWN"},
		{"wrong digest on upload", "POST", "/v2/bad/repo/blobs/uploads/?digest=" + wrongD.String(), nil, "hello", 400, "DIGEST_INVALID"},
		{"range past end", "GET", "/v2/bad/repo/blobs/" + goodD.String(), map[string]string{"Range": "bytes=5000-6000"}, "", 416, ""},
		{"inverted range", "GET", "/v2/bad/repo/blobs/" + goodD.String(), map[string]string{"Range": "bytes=100-50"}, "", 416, ""},
		{"out-of-order chunk", "PATCH", session, map[string]string{"Content-Range": "100-199", "Content-Type": "application/octet-stream"}, strings.Repeat("x", 100), 416, ""},
		{"unknown upload", "PATCH", "/v2/bad/repo/blobs/uploads/does-not-exist", nil, "x", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"oversized manifest", "PUT", "/v2/bad/repo/manifests/big", map[string]string{"Content-Type": ociManifest}, bigManifest, 413, ""},
		{"invalid JSON manifest", "PUT", "/v2/bad/repo/manifests/broken", map[string]string{"Content-Type": ociManifest}, "{not json", 400, "MANIFEST_INVALID"},
		{"unknown media type", "PUT", "/v2/bad/repo/manifests/odd", map[string]string{"Content-Type": "application/x-unknown"}, `{"schemaVersion":2}`, 400, "MANIFEST_INVALID"},
		{"manifest with missing blob", "PUT", "/v2/bad/repo/manifests/missing", map[string]string{"Content-Type": ociManifest},
			`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + wrongD.String() + `","size":10},"layers":[]}`, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"bad tag", "GET", "/v2/bad/repo/manifests/-tag", nil, "", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, a.url(tc.path), strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if tc.status == 0 {
				if resp.StatusCode < 400 {
					t.Fatalf("status %d, want an error", resp.StatusCode)
				}
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.code == "" {
				return
			}
			var e struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != tc.code {
				t.Fatalf("body %q, want OCI error %s", body, tc.code)
			}
		})
	}
	// Still serving.
	resp, err = http.Get(a.url("/v2/bad/repo/blobs/" + goodD.String()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, good) {
		t.Fatalf("normal pull after bad input: %d, %d bytes", resp.StatusCode, len(body))
	}
}
