package registryapi

import (
	"strings"
	"testing"
)

// FuzzParseDigest: an accepted digest round-trips, names a supported
// algorithm and has an encoded part of that algorithm's length.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("0", 128), "sha256:" + strings.Repeat("A", 64),
		"sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:", ":", "", "sha256+b64u:abc", "sha384:" + strings.Repeat("1", 96),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDigest(%q) = %q", s, d)
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseDigest(%q) accepted an invalid digest: %v", s, err)
		}
		if !d.Algorithm().Available() {
			t.Fatalf("ParseDigest(%q) accepted an unavailable algorithm", s)
		}
		if strings.ContainsAny(d.Encoded(), "/.\\") {
			t.Fatalf("ParseDigest(%q): encoded part could leave a directory", s)
		}
	})
}
