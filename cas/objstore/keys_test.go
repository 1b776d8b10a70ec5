package objstore_test

import (
	_ "crypto/sha512" // registers sha384 and sha512 for go-digest
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/cas/objstore"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	d := digest.FromString("manifest")
	s := digest.FromString("subject")
	d512 := digest.SHA512.FromString("x")
	tests := []struct {
		name, got, want string
	}{
		{"blob", objstore.BlobKey(d), "blobs/sha256/" + d.Encoded()},
		{"blob sha512", objstore.BlobKey(d512), "blobs/sha512/" + d512.Encoded()},
		{"blob invalid", objstore.BlobKey("sha256:xyz"), ""},
		{"blob no colon", objstore.BlobKey("nonsense"), ""},
		{"blob unknown alg", objstore.BlobKey("md5:d41d8cd98f00b204e9800998ecf8427e"), ""},
		{"blob upper hex", objstore.BlobKey(digest.Digest(strings.ToUpper(string(d)))), ""},
		{"tag", objstore.TagKey("library/app", "v1.0"), "repositories/library/app/tags/v1.0"},
		{"tag with slash", objstore.TagKey("app", "a/b"), ""},
		{"tag dotdot", objstore.TagKey("app", ".."), ""},
		{"tag empty", objstore.TagKey("app", ""), ""},
		{"tag bad repo", objstore.TagKey("../app", "v1"), ""},
		{"tags prefix", objstore.TagsPrefix("app"), "repositories/app/tags/"},
		{"tags prefix empty", objstore.TagsPrefix(""), ""},
		{"manifest", objstore.ManifestKey("app", d), "repositories/app/manifests/" + d.Encoded()},
		{"manifest bad", objstore.ManifestKey("app", "x"), ""},
		{"referrer", objstore.ReferrerKey("app", s, d), "repositories/app/referrers/" + s.Encoded() + "/" + d.Encoded()},
		{"referrers prefix", objstore.ReferrersPrefix("app", s), "repositories/app/referrers/" + s.Encoded() + "/"},
		{"referrer bad", objstore.ReferrerKey("app", s, "bad"), ""},
		{"repositories", objstore.RepositoriesPrefix(), "repositories/"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
		if tt.want != "" && !strings.HasSuffix(tt.want, "/") {
			if err := objstore.ValidateKey(tt.got); err != nil {
				t.Errorf("%s: helper produced an invalid key: %v", tt.name, err)
			}
		}
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	good := []string{"a", "a/b", "blobs/sha256/00", ".hidden/x", "a/..b", "a/b.", "ünïcode"}
	bad := []string{"", "/a", "a/", "a//b", ".", "..", "a/.", "./a", "a/../b", `a\b`, "a\x00", "\xfe",
		strings.Repeat("x", objstore.MaxKeyLength+1)}
	for _, k := range good {
		if err := objstore.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	for _, k := range bad {
		if err := objstore.ValidateKey(k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	goodPrefix := []string{"", "a", "a/", "a/b", "a/.", "a/..", "blobs/sha256/ab"}
	badPrefix := []string{"/", "/a", "a//", "../a", "a/./b", `a\`, "\x00"}
	for _, p := range goodPrefix {
		if err := objstore.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range badPrefix {
		if err := objstore.ValidatePrefix(p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

func TestChild(t *testing.T) {
	t.Parallel()
	p := objstore.TagsPrefix("app")
	tests := []struct {
		key  string
		want string
		ok   bool
	}{
		{p + "v1", "v1", true},
		{p + "nested/x", "", false},
		{p, "", false},
		{"repositories/other/tags/v1", "", false},
	}
	for _, tt := range tests {
		got, ok := objstore.Child(p, tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Child(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDigestFromHex(t *testing.T) {
	t.Parallel()
	for _, d := range []digest.Digest{digest.FromString("a"), digest.SHA384.FromString("a"), digest.SHA512.FromString("a")} {
		if got, err := objstore.DigestFromHex(d.Encoded()); err != nil || got != d {
			t.Errorf("DigestFromHex(%s) = %s, %v", d.Encoded(), got, err)
		}
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("A", 64)} {
		if _, err := objstore.DigestFromHex(bad); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("DigestFromHex(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}
