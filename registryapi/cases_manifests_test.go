package registryapi_test

import (
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestCalls covers manifests, tags, the catalog and referrers.
func manifestCalls() []call {
	config := desc(ocispec.MediaTypeImageConfig, fxConfig)
	layer := desc(ocispec.MediaTypeImageLayer, fxLayer)
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: fxMissingD, Size: 5}
	foreign := ocispec.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Digest: fxMissingD, Size: 5}
	image2 := imageManifest(ocispec.MediaTypeImageManifest, nil, config) // no layers
	image2D := digest.FromBytes(image2)
	noMediaType := imageManifest("", nil, config, layer)
	withSubject := imageManifest(ocispec.MediaTypeImageManifest, &ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: fxMissingD, Size: 100,
	}, config, layer)
	badLayerDigest := strings.Replace(string(image2), `"layers":[]`, `"layers":[{"mediaType":"x","digest":"sha256:zz","size":1}]`, 1)
	dockerManifest := string(imageManifest("application/vnd.docker.distribution.manifest.v2+json", nil,
		desc("application/vnd.docker.container.image.v1+json", fxConfig),
		desc("application/vnd.docker.image.rootfs.diff.tar.gzip", fxLayer)))
	goodIndex := index(fxManifestDesc)
	badIndex := index(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: fxMissingD, Size: 10})
	big := `{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","annotations":{"x":"` + strings.Repeat("a", fxMaxManifest) + `"}}`
	sha512Manifest := string(image2)
	sha512D := digest.SHA512.FromString(sha512Manifest)
	manifestETag := `"` + fxManifestD.String() + `"`

	return []call{
		// Manifest reads.
		{name: "manifest get by tag", method: "GET", path: manifestPath("latest"), status: 200, wantBody: `"schemaVersion":2`,
			wantHeader: map[string]string{
				"Content-Type": ocispec.MediaTypeImageManifest, "Docker-Content-Digest": fxManifestD.String(),
				"Content-Length": itoa(len(fxManifest)), "ETag": manifestETag,
			}},
		{name: "manifest head by digest", method: "HEAD", path: manifestPath(fxManifestD.String()), status: 200,
			wantHeader: map[string]string{"Docker-Content-Digest": fxManifestD.String(), "Content-Length": itoa(len(fxManifest))}},
		{name: "manifest if-none-match", method: "GET", path: manifestPath("latest"), header: hdr("If-None-Match", manifestETag), status: 304},
		{name: "manifest unknown tag", method: "GET", path: manifestPath("nope"), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest unknown digest", method: "GET", path: manifestPath(fxMissingD.String()), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest head unknown", method: "HEAD", path: manifestPath("nope"), status: 404},
		{name: "manifest invalid tag", method: "GET", path: manifestPath("-bad"), status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest tag too long", method: "GET", path: manifestPath(strings.Repeat("t", 129)), status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest malformed digest", method: "GET", path: manifestPath("sha256:zz"), status: 400, code: "DIGEST_INVALID"},
		{name: "manifest unknown repo", method: "GET", path: "/v2/nosuch/manifests/latest", status: 404, code: "MANIFEST_UNKNOWN"},

		// Manifest pushes.
		{name: "push by tag", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: string(image2), status: 201,
			wantHeader: map[string]string{"Location": manifestPath(image2D.String()), "Docker-Content-Digest": image2D.String()}},
		{name: "push by digest", method: "PUT", path: manifestPath(image2D.String()), header: ctOCIManifest, body: string(image2), status: 201,
			wantHeader: map[string]string{"Docker-Content-Digest": image2D.String()}},
		{name: "push by sha512 digest", method: "PUT", path: manifestPath(sha512D.String()), header: ctOCIManifest, body: sha512Manifest, status: 201,
			wantHeader: map[string]string{"Docker-Content-Digest": sha512D.String(), "Location": manifestPath(sha512D.String())}},
		{name: "push wrong digest", method: "PUT", path: manifestPath(fxManifestD.String()), header: ctOCIManifest, body: string(image2), status: 400, code: "DIGEST_INVALID"},
		{name: "push malformed digest", method: "PUT", path: manifestPath("sha256:1234"), header: ctOCIManifest, body: string(image2), status: 400, code: "DIGEST_INVALID"},
		{name: "push invalid tag", method: "PUT", path: manifestPath(".hidden"), header: ctOCIManifest, body: string(image2), status: 400, code: "MANIFEST_INVALID"},
		{name: "push invalid json", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: `{"schemaVersion":2,`, status: 400, code: "MANIFEST_INVALID"},
		{name: "push not an object", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: `[1,2]`, status: 400, code: "MANIFEST_INVALID"},
		{name: "push trailing data", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: string(image2) + "{}", status: 400, code: "MANIFEST_INVALID"},
		{name: "push empty body", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, status: 400, code: "MANIFEST_INVALID"},
		{name: "push schema 1", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest,
			body: strings.Replace(string(image2), `"schemaVersion":2`, `"schemaVersion":1`, 1), status: 400, code: "MANIFEST_INVALID"},
		{name: "push unknown media type", method: "PUT", path: manifestPath("v2"), header: hdr("Content-Type", "application/x-foo"),
			body: strings.Replace(string(image2), ocispec.MediaTypeImageManifest, "application/x-foo", 1), status: 400, code: "MANIFEST_INVALID"},
		{name: "push media type disagrees", method: "PUT", path: manifestPath("v2"), header: ctOCIIndex, body: string(image2), status: 400, code: "MANIFEST_INVALID"},
		{name: "push without mediaType field", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: string(noMediaType), status: 201},
		{name: "push without any media type", method: "PUT", path: manifestPath("v2"), body: string(noMediaType), status: 400, code: "MANIFEST_INVALID"},
		{name: "push content type params", method: "PUT", path: manifestPath("v2"), header: hdr("Content-Type", ocispec.MediaTypeImageManifest+"; charset=utf-8"), body: string(image2), status: 201},
		{name: "push docker manifest", method: "PUT", path: manifestPath("docker"), header: hdr("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"), body: dockerManifest, status: 201},
		{name: "push missing layer", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest,
			body: string(imageManifest(ocispec.MediaTypeImageManifest, nil, config, layer, missing)), status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "push missing config", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest,
			body: string(imageManifest(ocispec.MediaTypeImageManifest, nil, missing)), status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "push nondistributable layer", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest,
			body: string(imageManifest(ocispec.MediaTypeImageManifest, nil, config, foreign)), status: 201},
		{name: "push bad layer digest", method: "PUT", path: manifestPath("v2"), header: ctOCIManifest, body: badLayerDigest, status: 400, code: "MANIFEST_INVALID"},
		{name: "push index", method: "PUT", path: manifestPath("multi"), header: ctOCIIndex, body: string(goodIndex), status: 201},
		{name: "push index missing child", method: "PUT", path: manifestPath("multi"), header: ctOCIIndex, body: string(badIndex), status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "push missing subject allowed", method: "PUT", path: manifestPath("signed"), header: ctOCIManifest, body: string(withSubject), status: 201,
			wantHeader: map[string]string{"OCI-Subject": fxMissingD.String()}},
		{name: "push oversized", method: "PUT", path: manifestPath("big"), header: ctOCIManifest, body: big, status: 413, code: "SIZE_INVALID"},
		{name: "push oversized chunked", method: "PUT", path: manifestPath("big"), header: ctOCIManifest, body: big, chunked: true, status: 413, code: "SIZE_INVALID"},
		{name: "push with tag params", method: "PUT", path: manifestPath(image2D.String()) + "?tag=a&tag=b", header: ctOCIManifest, body: string(image2), status: 201,
			wantHeader: map[string]string{"OCI-Tag": "a"}},
		{name: "push bad tag param", method: "PUT", path: manifestPath(image2D.String()) + "?tag=-x", header: ctOCIManifest, body: string(image2), status: 400, code: "MANIFEST_INVALID"},

		// Manifest deletes.
		{name: "delete by tag", method: "DELETE", path: manifestPath("latest"), status: 202},
		{name: "delete by digest", method: "DELETE", path: manifestPath(fxManifestD.String()), status: 202},
		{name: "delete unknown", method: "DELETE", path: manifestPath("nope"), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "delete bad digest", method: "DELETE", path: manifestPath("sha256:x"), status: 400, code: "DIGEST_INVALID"},

		// Tags and catalog.
		{name: "tags list", method: "GET", path: "/v2/library/alpine/tags/list", status: 200, wantBody: `{"name":"library/alpine","tags":["latest"]}`},
		{name: "tags list n=0", method: "GET", path: "/v2/library/alpine/tags/list?n=0", status: 200, wantBody: `"tags":[]`},
		{name: "tags list past last", method: "GET", path: "/v2/library/alpine/tags/list?last=latest", status: 200, wantBody: `"tags":[]`},
		{name: "tags list bad n", method: "GET", path: "/v2/library/alpine/tags/list?n=abc", status: 400, code: "PAGINATION_NUMBER_INVALID"},
		{name: "tags list negative n", method: "GET", path: "/v2/library/alpine/tags/list?n=-1", status: 400, code: "PAGINATION_NUMBER_INVALID"},
		{name: "catalog", method: "GET", path: "/v2/_catalog", status: 200, wantBody: `{"repositories":["library/alpine","other/repo"]}`},
		{name: "catalog page", method: "GET", path: "/v2/_catalog?n=1", status: 200, wantBody: `["library/alpine"]`,
			wantHeader: map[string]string{"Link": `</v2/_catalog?n=1&last=library%2Falpine>; rel="next"`}},
		{name: "catalog last page", method: "GET", path: "/v2/_catalog?n=1&last=library/alpine", status: 200, wantBody: `["other/repo"]`,
			wantHeader: map[string]string{"Link": ""}},

		// Referrers.
		{name: "referrers", method: "GET", path: "/v2/library/alpine/referrers/" + fxManifestD.String(), status: 200, wantBody: fxSigD.String(),
			wantHeader: map[string]string{"Content-Type": ocispec.MediaTypeImageIndex, "OCI-Filters-Applied": ""}},
		{name: "referrers filtered", method: "GET", path: "/v2/library/alpine/referrers/" + fxManifestD.String() + "?artifactType=" + fxSigType, status: 200,
			wantBody: `"artifactType":"` + fxSigType + `"`, wantHeader: map[string]string{"OCI-Filters-Applied": "artifactType"}},
		{name: "referrers filtered out", method: "GET", path: "/v2/library/alpine/referrers/" + fxManifestD.String() + "?artifactType=x/y", status: 200,
			wantBody: `"manifests":[]`, wantHeader: map[string]string{"OCI-Filters-Applied": "artifactType"}},
		{name: "referrers none", method: "GET", path: "/v2/library/alpine/referrers/" + fxMissingD.String(), status: 200, wantBody: `"manifests":[]`},
		{name: "referrers bad digest", method: "GET", path: "/v2/library/alpine/referrers/sha256:q", status: 400, code: "DIGEST_INVALID"},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
