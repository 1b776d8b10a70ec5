package registryapi

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// MaxNameLength bounds a repository name. The spec leaves the bound to the
// registry; 255 matches common clients' reference limit.
const MaxNameLength = 255

var (
	// nameRE is the spec grammar for a repository name.
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the spec grammar for a tag.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// uploadIDRE bounds upload session ids taken from a URL.
	uploadIDRE = regexp.MustCompile(`^[a-zA-Z0-9_.=-]{1,128}$`)
)

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool {
	return len(name) <= MaxNameLength && nameRE.MatchString(name)
}

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool {
	return tagRE.MatchString(tag)
}

// ParseDigest parses s as a sha256 or sha512 digest in canonical form.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parse digest %q: %w", s, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	default:
		return "", fmt.Errorf("digest %q: unsupported algorithm", s)
	}
}

// Reference is a manifest reference: a tag or a digest, exactly one set.
type Reference struct {
	// Tag is the tag, or "" for a digest reference.
	Tag string
	// Digest is the digest, or "" for a tag reference.
	Digest digest.Digest
}

// String returns the reference as it appears in a URL.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// ParseReference parses a manifest reference: a digest if it contains ':',
// else a tag.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if !ValidTag(s) {
		return Reference{}, fmt.Errorf("invalid tag %q", s)
	}
	return Reference{Tag: s}, nil
}

// routeKind names an API endpoint; its string is the low-cardinality route
// name passed to Options.OnRequest.
type routeKind string

const (
	routeBase      routeKind = "base"
	routeCatalog   routeKind = "catalog"
	routeBlob      routeKind = "blob"
	routeUpload    routeKind = "upload"
	routeManifest  routeKind = "manifest"
	routeTags      routeKind = "tags"
	routeReferrers routeKind = "referrers"
	routeUnknown   routeKind = "unknown"
)

// route is a parsed API path.
type route struct {
	kind routeKind
	// name is the repository name (unvalidated until parsePath returns).
	name string
	// arg is the digest, reference or upload id; "" for an upload start.
	arg string
}

// parsePath splits an escaped URL path into a route. Repository names
// contain slashes, so the endpoint is recognised from the end of the path:
//
//	/v2/
//	/v2/_catalog
//	/v2/<name>/tags/list
//	/v2/<name>/blobs/uploads/[<id>]
//	/v2/<name>/blobs/<digest>
//	/v2/<name>/manifests/<reference>
//	/v2/<name>/referrers/<digest>
//
// It returns a NAME_INVALID error when the path names an endpoint but the
// repository name is invalid, and ok=false when no endpoint matches.
func parsePath(escaped string) (route, bool, error) {
	rest, found := strings.CutPrefix(escaped, "/v2/")
	if !found {
		if escaped == "/v2" {
			return route{kind: routeBase}, true, nil
		}
		return route{}, false, nil
	}
	switch rest {
	case "":
		return route{kind: routeBase}, true, nil
	case "_catalog":
		return route{kind: routeCatalog}, true, nil
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	var rt route
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt = route{kind: routeTags, name: strings.Join(segs[:n-2], "/")}
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" && !strings.Contains(segs[n-1], ":"):
		rt = route{kind: routeUpload, name: strings.Join(segs[:n-3], "/"), arg: segs[n-1]}
		if rt.arg != "" && !uploadIDRE.MatchString(rt.arg) {
			return route{}, true, apiErr(CodeBlobUploadUnknown, "invalid upload id")
		}
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		rt = route{kind: routeUpload, name: strings.Join(segs[:n-2], "/")}
	case n >= 3 && segs[n-2] == "blobs":
		rt = route{kind: routeBlob, name: strings.Join(segs[:n-2], "/"), arg: segs[n-1]}
	case n >= 3 && segs[n-2] == "manifests":
		rt = route{kind: routeManifest, name: strings.Join(segs[:n-2], "/"), arg: segs[n-1]}
	case n >= 3 && segs[n-2] == "referrers":
		rt = route{kind: routeReferrers, name: strings.Join(segs[:n-2], "/"), arg: segs[n-1]}
	default:
		return route{}, false, nil
	}
	if !ValidName(rt.name) {
		return rt, true, apiErr(CodeNameInvalid, map[string]string{"name": truncate(rt.name, 300)})
	}
	return rt, true, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
