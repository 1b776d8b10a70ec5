package objstoretest

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// testLayout stores a pushed image under the keys of the shared layout and
// reads tags and referrers back the way the agent does.
func testLayout(t *testing.T, s objstore.Store) {
	manifest := digest.FromString("manifest")
	sig := digest.FromString("signature")
	put(t, s, objstore.BlobKey(manifest), "manifest")
	put(t, s, objstore.ManifestKey("library/app", manifest), "")
	put(t, s, objstore.TagKey("library/app", "v1"), manifest.String())
	put(t, s, objstore.TagKey("library/app", "latest"), manifest.String())
	put(t, s, objstore.ReferrerKey("library/app", manifest, sig), "")
	// A nested repository whose name continues with "tags".
	put(t, s, objstore.TagKey("library/app/tags", "x"), manifest.String())

	var tags []string
	prefix := objstore.TagsPrefix("library/app")
	for _, k := range list(t, s, prefix) {
		if tag, ok := objstore.Child(prefix, k); ok {
			tags = append(tags, tag)
		}
	}
	if !slices.Equal(tags, []string{"latest", "v1"}) {
		t.Errorf("tags = %q, want [latest v1]", tags)
	}
	prefix = objstore.ReferrersPrefix("library/app", manifest)
	refs := list(t, s, prefix)
	if len(refs) != 1 {
		t.Fatalf("referrers = %q, want one", refs)
	}
	hex, _ := objstore.Child(prefix, refs[0])
	if d, err := objstore.DigestFromHex(hex); err != nil || d != sig {
		t.Errorf("referrer digest = %s, %v; want %s", d, err, sig)
	}
	if got := get(t, s, objstore.TagKey("library/app", "v1"), 0, -1); got != manifest.String() {
		t.Errorf("tag v1 = %q, want %s", got, manifest)
	}
}
