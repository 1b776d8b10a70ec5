package objstore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

// MaxKeyLength bounds a key's length in bytes (S3's limit).
const MaxKeyLength = 1024

// hexLen maps the digest algorithms the layout accepts to the length of
// their hex encoding.
var hexLen = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}

// validDigest reports whether d is alg:hex for a known algorithm, with
// lowercase hex of the right length. Key helpers use it instead of
// d.Validate, which depends on hash registration.
func validDigest(d digest.Digest) bool {
	alg, enc, ok := strings.Cut(string(d), ":")
	if !ok || hexLen[alg] != len(enc) {
		return false
	}
	return isHex(enc)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// validName reports whether s can be used as one or more key segments.
func validName(s string, slashes bool) bool {
	if s == "" || (!slashes && strings.Contains(s, "/")) {
		return false
	}
	return ValidateKey(s) == nil
}

// BlobKey returns blobs/<alg>/<hex>, or "" (a key every Store rejects) if d
// is not a valid digest.
func BlobKey(d digest.Digest) string {
	if !validDigest(d) {
		return ""
	}
	alg, enc, _ := strings.Cut(string(d), ":")
	return "blobs/" + alg + "/" + enc
}

// RepositoriesPrefix returns the prefix under which every repository's keys live.
func RepositoriesPrefix() string { return "repositories/" }

// TagsPrefix returns repositories/<repo>/tags/, or "" if repo is not usable
// in a key. Use Child to read tag names from the keys listed under it.
func TagsPrefix(repo string) string {
	if !validName(repo, true) {
		return ""
	}
	return "repositories/" + repo + "/tags/"
}

// TagKey returns repositories/<repo>/tags/<tag>, or "" if repo or tag is not
// usable in a key (a tag never contains a slash).
func TagKey(repo, tag string) string {
	p := TagsPrefix(repo)
	if p == "" || !validName(tag, false) {
		return ""
	}
	return p + tag
}

// ManifestKey returns repositories/<repo>/manifests/<hex>, the empty marker
// saying manifest d belongs to repo, or "" if an argument is invalid. The
// algorithm is implied by the hex length (see DigestFromHex).
func ManifestKey(repo string, d digest.Digest) string {
	if !validName(repo, true) || !validDigest(d) {
		return ""
	}
	return "repositories/" + repo + "/manifests/" + hexOf(d)
}

// ReferrersPrefix returns repositories/<repo>/referrers/<subject-hex>/, or ""
// if an argument is invalid.
func ReferrersPrefix(repo string, subject digest.Digest) string {
	if !validName(repo, true) || !validDigest(subject) {
		return ""
	}
	return "repositories/" + repo + "/referrers/" + hexOf(subject) + "/"
}

// ReferrerKey returns repositories/<repo>/referrers/<subject-hex>/<hex>, the
// marker saying manifest d refers to subject, or "" if an argument is invalid.
func ReferrerKey(repo string, subject, d digest.Digest) string {
	p := ReferrersPrefix(repo, subject)
	if p == "" || !validDigest(d) {
		return ""
	}
	return p + hexOf(d)
}

func hexOf(d digest.Digest) string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

// Child returns the last segment of key if key lies directly under prefix
// (prefix ends with "/"). Listing TagsPrefix(repo) also yields the keys of
// nested repositories such as <repo>/tags; those have a slash after the
// prefix, and Child rejects them.
func Child(prefix, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}

// DigestFromHex turns the hex segment of a manifest or referrer key back
// into a digest, choosing the algorithm by length.
func DigestFromHex(hex string) (digest.Digest, error) {
	for alg, n := range hexLen {
		if n == len(hex) && isHex(hex) {
			return digest.Digest(alg + ":" + hex), nil
		}
	}
	return "", fmt.Errorf("objstore: %q is not a digest's hex: %w", hex, ErrInvalidKey)
}

// ValidateKey checks that key is a relative, slash-separated path of
// non-empty segments, none of them "." or "..", without backslashes or NUL
// bytes, valid UTF-8 and at most MaxKeyLength bytes. Every Store calls it;
// the error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if err := checkChars(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q has segment %q", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: "" (everything), or a key, or a key
// followed by "/", or a key whose last segment is partial. Every segment
// before the last must be valid as in ValidateKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkChars(prefix); err != nil {
		return err
	}
	segs := strings.Split(prefix, "/")
	for _, seg := range segs[:len(segs)-1] {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: prefix %q has segment %q", ErrInvalidKey, prefix, seg)
		}
	}
	return nil
}

func checkChars(s string) error {
	switch {
	case len(s) > MaxKeyLength:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(s), MaxKeyLength)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidKey, s)
	case strings.ContainsAny(s, "\\\x00"):
		return fmt.Errorf("%w: %q contains a backslash or NUL", ErrInvalidKey, s)
	}
	return nil
}
