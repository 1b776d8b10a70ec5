package registryapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-4", "bytes=5-", "bytes=-3", "bytes=0-1,2-3", "bytes=9-2", "items=0-1", "bytes=-0", "bytes= 1-2", "bytes=99999999999999999999-"} {
		f.Add(s, int64(32))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		br, err := parseRange(header, size)
		if err != nil {
			if !errors.Is(err, errRangeSyntax) && !errors.Is(err, errRangeUnsatisfiable) &&
				!errors.Is(err, errRangeMultiple) && !errors.Is(err, errRangeUnit) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if br.Start < 0 || br.Start > br.End || br.End >= size {
			t.Fatalf("parseRange(%q, %d) = %+v: outside the content", header, size, br)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-4", "bytes 3-5/*", "bytes=3-5", "5-3", "x-y", "-1", "0-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		br, err := parseContentRange(header)
		if err == nil && (br.Start < 0 || br.End < br.Start) {
			t.Fatalf("parseContentRange(%q) = %+v", header, br)
		}
	})
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"library/alpine/tags/list", "a/blobs/uploads/", "a/blobs/uploads/id", "a/b/blobs/sha256:00",
		"../x/manifests/latest", "a%2Fb/tags/list", "a//b/referrers/sha256:1", "_catalog", "",
		"a/blobs/blobs/uploads", "A/manifests/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) {
			if len(s) > MaxNameLength || strings.Contains(s, "..") || strings.Contains(s, "//") ||
				strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
				t.Fatalf("ValidName(%q) accepted a bad name", s)
			}
		}
		rt, ok, err := parsePath("/v2/" + s)
		if !ok || err != nil {
			return
		}
		switch rt.kind {
		case routeBase, routeCatalog:
		default:
			if !ValidName(rt.name) || strings.ContainsAny(rt.name, "%?#") {
				t.Fatalf("parsePath(%q) returned invalid name %q", s, rt.name)
			}
		}
	})
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"latest", "v1.0_rc-1", "-bad", "sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("0", 128), "sha256:A", "md5:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseReference(s)
		if err != nil {
			return
		}
		switch {
		case ref.Digest != "" && ref.Tag != "":
			t.Fatalf("ParseReference(%q) set both tag and digest", s)
		case ref.Digest != "":
			if _, err := ParseDigest(ref.Digest.String()); err != nil || ref.String() != s {
				t.Fatalf("ParseReference(%q) digest %q does not round-trip", s, ref.Digest)
			}
		default:
			if !ValidTag(ref.Tag) || len(ref.Tag) > 128 || ref.String() != s {
				t.Fatalf("ParseReference(%q) tag %q invalid", s, ref.Tag)
			}
		}
	})
}

func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[]}`), ocispec.MediaTypeImageManifest)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`), ocispec.MediaTypeImageIndex)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"x","digest":"sha256:00","size":1}]}`), "")
	f.Add([]byte(`{"schemaVersion":2,"config":{},"subject":{"mediaType":"m","digest":"sha512:00","size":-1}}`), "application/json; x=")
	f.Add([]byte(`not json`), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		put, err := parseManifest(body, contentType)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeManifestInvalid {
				t.Fatalf("parseManifest error %v is not MANIFEST_INVALID", err)
			}
			return
		}
		if !isManifestMediaType(put.MediaType) {
			t.Fatalf("accepted media type %q", put.MediaType)
		}
		for _, d := range put.References {
			if _, err := ParseDigest(d.Digest.String()); err != nil || d.Size < 0 {
				t.Fatalf("accepted reference %+v", d)
			}
		}
		if put.Subject != nil {
			if _, err := ParseDigest(put.Subject.Digest.String()); err != nil {
				t.Fatalf("accepted subject %+v", put.Subject)
			}
		}
	})
}

// readFromWriter is a ResponseWriter that notes whether ReadFrom was used.
type readFromWriter struct {
	*httptest.ResponseRecorder
	used bool
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.used = true
	return io.Copy(w.ResponseRecorder, r)
}

// TestRecorderForwardsReadFrom: the status recorder keeps the underlying
// writer's ReadFrom reachable, so an *os.File copy can use sendfile.
func TestRecorderForwardsReadFrom(t *testing.T) {
	t.Parallel()
	w := &readFromWriter{ResponseRecorder: httptest.NewRecorder()}
	rec := &recorder{ResponseWriter: w}
	if _, err := io.CopyN(rec, strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	if !w.used || w.Body.String() != "hello" || rec.status() != http.StatusOK {
		t.Fatalf("ReadFrom used=%v body=%q status=%d", w.used, w.Body.String(), rec.status())
	}
}
