package registryapi_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// calls is the HTTP table: base, names, blobs and uploads here; manifests,
// tags, catalog and referrers in manifestCalls.
func calls() []call {
	abc := digest.FromString("abc")
	abcdef := digest.FromString("abcdef")
	n := len(fxLayer)
	cs := []call{
		// Base and routing.
		{name: "base", method: "GET", path: "/v2/", status: 200, wantBody: "{}",
			wantHeader: map[string]string{"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"}},
		{name: "base head", method: "HEAD", path: "/v2/", status: 200},
		{name: "base no slash", method: "GET", path: "/v2", status: 200},
		{name: "base post", method: "POST", path: "/v2/", status: 405, code: "UNSUPPORTED", wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "outside api", method: "GET", path: "/v1/foo", status: 404, code: "NOT_FOUND"},
		{name: "unknown endpoint", method: "GET", path: "/v2/library/alpine/things/x", status: 404, code: "NOT_FOUND"},

		// Repository names.
		{name: "uppercase name", method: "GET", path: "/v2/Library/alpine/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "traversal name", method: "GET", path: "/v2/../../etc/blobs/" + fxLayerD.String(), status: 400, code: "NAME_INVALID"},
		{name: "encoded traversal", method: "GET", path: "/v2/library/%2e%2e/blobs/" + fxLayerD.String(), status: 400, code: "NAME_INVALID"},
		{name: "encoded slash", method: "GET", path: "/v2/library%2Falpine/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "empty component", method: "GET", path: "/v2/library//alpine/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "trailing separator", method: "GET", path: "/v2/alpine-/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "dot component", method: "GET", path: "/v2/library/./alpine/manifests/latest", status: 400, code: "NAME_INVALID"},
		{name: "name too long", method: "GET", path: "/v2/" + strings.Repeat("a", 256) + "/tags/list", status: 400, code: "NAME_INVALID"},
		{name: "empty name", method: "GET", path: "/v2//tags/list", status: 400, code: "NAME_INVALID"},
		{name: "unknown repository", method: "GET", path: "/v2/nosuch/repo/tags/list", status: 404, code: "NAME_UNKNOWN"},
		{name: "name with separators", method: "GET", path: "/v2/a.b_c__d--e/f/tags/list", status: 404, code: "NAME_UNKNOWN"},

		// Blob reads.
		{name: "blob get", method: "GET", path: blobPath(fxLayerD), status: 200, wantBody: string(fxLayer),
			wantHeader: map[string]string{
				"Content-Length": layerLen, "Docker-Content-Digest": fxLayerD.String(), "ETag": `"` + fxLayerD.String() + `"`,
				"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
			}},
		{name: "blob head", method: "HEAD", path: blobPath(fxLayerD), status: 200,
			wantHeader: map[string]string{"Content-Length": layerLen, "Docker-Content-Digest": fxLayerD.String()}},
		{name: "blob unknown", method: "GET", path: blobPath(fxMissingD), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob head unknown", method: "HEAD", path: blobPath(fxMissingD), status: 404},
		{name: "blob of other repo", method: "GET", path: blobPath(fxOtherD), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob malformed digest", method: "GET", path: "/v2/library/alpine/blobs/sha256:xyz", status: 400, code: "DIGEST_INVALID"},
		{name: "blob short digest", method: "GET", path: "/v2/library/alpine/blobs/sha256:abcd", status: 400, code: "DIGEST_INVALID"},
		{name: "blob uppercase digest", method: "GET", path: "/v2/library/alpine/blobs/" + strings.ToUpper(fxLayerD.String()), status: 400, code: "DIGEST_INVALID"},
		{name: "blob unknown algorithm", method: "GET", path: "/v2/library/alpine/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: "DIGEST_INVALID"},
		{name: "blob sha512 unknown", method: "GET", path: blobPath(sha512Of("x")), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob if-none-match", method: "GET", path: blobPath(fxLayerD), header: hdr("If-None-Match", `"`+fxLayerD.String()+`"`), status: 304},
		{name: "blob if-none-match other", method: "GET", path: blobPath(fxLayerD), header: hdr("If-None-Match", `"sha256:0"`), status: 200},
		{name: "blob put unsupported", method: "PUT", path: blobPath(fxLayerD), status: 405, code: "UNSUPPORTED"},

		// Blob ranges.
		{name: "range a-b", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=0-4"), status: 206, wantBody: "hello",
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 0-4/%d", n), "Content-Length": "5"}},
		{name: "range a-", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=22-"), status: 206, wantBody: "0123456789",
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 22-%d/%d", n-1, n)}},
		{name: "range suffix", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=-3"), status: 206, wantBody: "789",
			wantHeader: map[string]string{"Content-Length": "3"}},
		{name: "range end clamped", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=30-999"), status: 206,
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 30-%d/%d", n-1, n)}},
		{name: "range beyond end", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=100-200"), status: 416, code: "RANGE_INVALID",
			wantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", n)}},
		{name: "range reversed", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=5-2"), status: 416, code: "RANGE_INVALID"},
		{name: "range garbage", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=abc"), status: 416, code: "RANGE_INVALID"},
		{name: "range negative", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=-5-6"), status: 416, code: "RANGE_INVALID"},
		{name: "range empty suffix", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=-0"), status: 416, code: "RANGE_INVALID"},
		{name: "range multiple", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=0-1,3-4"), status: 200, wantBody: string(fxLayer)},
		{name: "range overlapping multiple", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=0-9,5-12"), status: 200},
		{name: "range other unit", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "items=0-1"), status: 200},
		{name: "range if-range mismatch", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=0-1", "If-Range", `"sha256:0"`), status: 200},
		{name: "range if-range match", method: "GET", path: blobPath(fxLayerD), header: hdr("Range", "bytes=0-1", "If-Range", `"`+fxLayerD.String()+`"`), status: 206},

		// Blob deletes.
		{name: "blob delete", method: "DELETE", path: blobPath(fxLayerD), status: 202},
		{name: "blob delete unknown", method: "DELETE", path: blobPath(fxMissingD), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob delete bad digest", method: "DELETE", path: "/v2/library/alpine/blobs/sha256:..", status: 400, code: "DIGEST_INVALID"},

		// Upload sessions.
		{name: "upload start", method: "POST", path: uploadPath(""), status: 202,
			wantHeader: map[string]string{"Location": "*", "Docker-Upload-UUID": "*", "Range": "0-0"}},
		{name: "upload start no slash", method: "POST", path: "/v2/library/alpine/blobs/uploads", status: 202},
		{name: "upload monolithic", method: "POST", path: uploadPath("?digest=" + abc.String()), body: "abc", status: 201,
			wantHeader: map[string]string{"Location": "/v2/library/alpine/blobs/" + abc.String(), "Docker-Content-Digest": abc.String()}},
		{name: "upload monolithic sha512", method: "POST", path: uploadPath("?digest=" + sha512Of("abc").String()), body: "abc", status: 201,
			wantHeader: map[string]string{"Docker-Content-Digest": sha512Of("abc").String()}},
		{name: "upload monolithic wrong digest", method: "POST", path: uploadPath("?digest=" + abcdef.String()), body: "abc", status: 400, code: "DIGEST_INVALID"},
		{name: "upload monolithic bad digest", method: "POST", path: uploadPath("?digest=sha256:nothex"), body: "abc", status: 400, code: "DIGEST_INVALID"},
		{name: "upload mount", method: "POST", path: "/v2/library/busybox/blobs/uploads/?mount=" + fxOtherD.String() + "&from=" + fxOtherRepo, status: 201,
			wantHeader: map[string]string{"Location": "/v2/library/busybox/blobs/" + fxOtherD.String(), "Docker-Content-Digest": fxOtherD.String()}},
		{name: "upload mount anonymous", method: "POST", path: uploadPath("?mount=" + fxOtherD.String()), status: 201},
		{name: "upload mount unknown falls back", method: "POST", path: uploadPath("?mount=" + fxMissingD.String() + "&from=" + fxOtherRepo), status: 202,
			wantHeader: map[string]string{"Docker-Upload-UUID": "*", "Range": "0-0"}},
		{name: "upload mount wrong source", method: "POST", path: uploadPath("?mount=" + fxOtherD.String() + "&from=library/alpine"), status: 202},
		{name: "upload mount bad from", method: "POST", path: uploadPath("?mount=" + fxOtherD.String() + "&from=../x"), status: 400, code: "NAME_INVALID"},
		{name: "upload mount bad digest", method: "POST", path: uploadPath("?mount=sha256:1&from=" + fxOtherRepo), status: 400, code: "DIGEST_INVALID"},
		{name: "upload status", method: "GET", path: uploadPath("{upload}"), status: 204,
			wantHeader: map[string]string{"Range": "0-2", "Location": "*", "Docker-Upload-UUID": "*"}},
		{name: "upload status unknown", method: "GET", path: uploadPath("deadbeef"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id invalid", method: "GET", path: uploadPath("bad!id"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload of other repo", method: "GET", path: "/v2/other/repo/blobs/uploads/{upload}", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload post to session", method: "POST", path: uploadPath("{upload}"), status: 405, code: "UNSUPPORTED"},
		{name: "chunk in order", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "3-5"), body: "def", status: 202,
			wantHeader: map[string]string{"Range": "0-5", "Location": "*"}},
		{name: "chunk bytes prefix", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "bytes 3-5/*"), body: "def", status: 202,
			wantHeader: map[string]string{"Range": "0-5"}},
		{name: "chunk chunked encoding", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "3-5"), body: "def", chunked: true, status: 202,
			wantHeader: map[string]string{"Range": "0-5"}},
		{name: "chunk chunked too long", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "3-4"), body: "def", chunked: true, status: 400, code: "SIZE_INVALID"},
		{name: "chunk chunked too short", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "3-9"), body: "def", chunked: true, status: 400, code: "SIZE_INVALID"},
		{name: "chunk overlapping", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "0-2"), body: "xyz", status: 416, code: "RANGE_INVALID",
			wantHeader: map[string]string{"Range": "0-2", "Location": "*"}},
		{name: "chunk out of order", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "10-12"), body: "xyz", status: 416, code: "RANGE_INVALID"},
		{name: "chunk malformed range", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "x-y"), body: "xyz", status: 416, code: "RANGE_INVALID"},
		{name: "chunk reversed range", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "5-3"), body: "xyz", status: 416, code: "RANGE_INVALID"},
		{name: "chunk length mismatch", method: "PATCH", path: uploadPath("{upload}"), header: hdr("Content-Range", "3-5"), body: "de", status: 416, code: "RANGE_INVALID"},
		{name: "chunk unknown upload", method: "PATCH", path: uploadPath("deadbeef"), body: "x", status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "stream patch", method: "PATCH", path: uploadPath("{upload}"), body: "def", chunked: true, status: 202,
			wantHeader: map[string]string{"Range": "0-5"}},
		{name: "upload finish with chunk", method: "PUT", path: uploadPath("{upload}?digest=" + abcdef.String()), body: "def", status: 201,
			wantHeader: map[string]string{"Location": "/v2/library/alpine/blobs/" + abcdef.String(), "Docker-Content-Digest": abcdef.String()}},
		{name: "upload finish empty body", method: "PUT", path: uploadPath("{upload}?digest=" + abc.String()), status: 201},
		{name: "upload finish ranged chunk", method: "PUT", path: uploadPath("{upload}?digest=" + abcdef.String()), header: hdr("Content-Range", "3-5"), body: "def", status: 201},
		{name: "upload finish bad range", method: "PUT", path: uploadPath("{upload}?digest=" + abcdef.String()), header: hdr("Content-Range", "0-2"), body: "def", status: 416, code: "RANGE_INVALID"},
		{name: "upload finish no digest", method: "PUT", path: uploadPath("{upload}"), status: 400, code: "DIGEST_INVALID"},
		{name: "upload finish wrong digest", method: "PUT", path: uploadPath("{upload}?digest=" + abcdef.String()), status: 400, code: "DIGEST_INVALID"},
		{name: "upload finish unknown", method: "PUT", path: uploadPath("deadbeef?digest=" + abc.String()), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload cancel", method: "DELETE", path: uploadPath("{upload}"), status: 204},
		{name: "upload cancel unknown", method: "DELETE", path: uploadPath("deadbeef"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
	}
	return append(cs, manifestCalls()...)
}
