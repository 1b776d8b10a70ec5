package p2p

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParseRange: a peer's Range header either fails with one of the two
// range errors or yields a non-empty span inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-4", "bytes=5-", "bytes=-3", "bytes=0-1,2-3", "bytes=9-2", "items=0-1",
		"bytes=-0", "bytes= 1-2", "bytes=99999999999999999999-", "bytes=-9223372036854775808", "bytes=0-9223372036854775807"} {
		f.Add(s, int64(32))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		off, n, partial, err := parseRange(h, size)
		if err != nil {
			if !errors.Is(err, errBadRange) && !errors.Is(err, errUnsatisfiableRange) {
				t.Fatalf("parseRange(%q, %d): unexpected error %v", h, size, err)
			}
			return
		}
		if !partial {
			if h != "" || off != 0 || n != size {
				t.Fatalf("parseRange(%q, %d) = whole %d+%d", h, size, off, n)
			}
			return
		}
		if off < 0 || n <= 0 || off+n > size || off+n < off {
			t.Fatalf("parseRange(%q, %d) = %d+%d: outside the blob", h, size, off, n)
		}
	})
}

// FuzzParseContentRange: a peer's Content-Range either fails or describes
// a non-empty span inside a blob of the stated size, and round-trips.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-4/5", "bytes 3-5/*", "bytes=3-5/9", "bytes 5-3/9", "bytes x-y/z", "bytes 0-9/5",
		"bytes -1-2/3", "bytes 0-9223372036854775807/9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		off, n, size, err := parseContentRange(h)
		if err != nil {
			if !errors.Is(err, errBadRange) {
				t.Fatalf("parseContentRange(%q): unexpected error %v", h, err)
			}
			return
		}
		if off < 0 || n <= 0 || size < 0 || off+n > size || off+n < off {
			t.Fatalf("parseContentRange(%q) = %d+%d of %d", h, off, n, size)
		}
		if got := contentRange(off, n, size); got != h {
			// Leading zeros or a plus sign parse but do not round-trip;
			// the values must still agree.
			o2, n2, s2, err := parseContentRange(got)
			if err != nil || o2 != off || n2 != n || s2 != size {
				t.Fatalf("parseContentRange(%q) does not round-trip through %q", h, got)
			}
		}
	})
}

// FuzzPeerBlobRequest sends fuzzed peer requests (path and Range) to the
// peer-facing handler: every answer is one of the documented statuses, and
// a 200 or 206 body is exactly the requested bytes of the blob.
func FuzzPeerBlobRequest(f *testing.F) {
	blob := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	d := digest.FromBytes(blob)
	for _, c := range [][2]string{
		{"/blobs/" + d.String(), ""}, {"/blobs/" + d.String(), "bytes=3-9"}, {"/blobs/" + d.String(), "bytes=-5"},
		{"/blobs/" + d.String(), "bytes=40-"}, {"/blobs/sha256:00", ""}, {"/blobs/" + digest.FromString("x").String(), ""},
		{"/probe?bytes=16", ""}, {"/probe?bytes=99999999999", ""}, {"/blobs/../../etc/passwd", ""}, {"/blobs/" + d.String(), "bytes=0-1,4-5"},
	} {
		f.Add(c[0], c[1])
	}
	src := NewMemorySource()
	src.Put(blob)
	n := &Node{src: src, log: slog.New(slog.DiscardHandler)}
	h := n.handler()
	f.Fuzz(func(t *testing.T, target, rng string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "http://peer"+u.RequestURI(), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if v := recover(); v != nil && v != http.ErrAbortHandler {
					t.Fatalf("handler panicked: %v", v)
				}
			}()
			h.ServeHTTP(w, req)
		}()
		switch w.Code {
		case http.StatusOK, http.StatusPartialContent:
			if !strings.HasPrefix(u.Path, "/blobs/") {
				return // a probe
			}
			body := w.Body.Bytes()
			if w.Code == http.StatusOK && !bytes.Equal(body, blob) {
				t.Fatalf("GET %s: 200 with %d bytes, want the whole blob", target, len(body))
			}
			if w.Code == http.StatusPartialContent {
				off, n, size, err := parseContentRange(w.Header().Get("Content-Range"))
				if err != nil || size != int64(len(blob)) || !bytes.Equal(body, blob[off:off+n]) {
					t.Fatalf("GET %s Range %q: 206 %q does not match Content-Range %q", target, rng, body, w.Header().Get("Content-Range"))
				}
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable, http.StatusMethodNotAllowed,
			http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		default:
			t.Fatalf("GET %s Range %q: unexpected status %d: %s", target, rng, w.Code, w.Body)
		}
	})
}
