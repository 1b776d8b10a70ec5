package p2p

import (
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/opencontainers/go-digest"
)

func TestDigestToCID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		d       digest.Digest
		code    uint64
		wantErr bool
	}{
		{"sha256", digest.SHA256.FromString("hello"), multihash.SHA2_256, false},
		{"sha512", digest.SHA512.FromString("hello"), multihash.SHA2_512, false},
		{"sha384 unsupported", digest.SHA384.FromString("hello"), 0, true},
		{"malformed", digest.Digest("sha256:xyz"), 0, true},
		{"empty", digest.Digest(""), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := DigestToCID(tt.d)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DigestToCID(%q) err = %v, wantErr %v", tt.d, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if c.Version() != 1 || c.Type() != cid.Raw {
				t.Fatalf("cid %s: version %d codec %x", c, c.Version(), c.Type())
			}
			dec, err := multihash.Decode(c.Hash())
			if err != nil || dec.Code != tt.code {
				t.Fatalf("multihash %v, %v", dec, err)
			}
			back, err := CIDToDigest(c)
			if err != nil || back != tt.d {
				t.Fatalf("CIDToDigest = %q, %v; want %q", back, err, tt.d)
			}
		})
	}
	// The multihash digest is the OCI digest's own bytes.
	sum := sha256.Sum256([]byte("hello"))
	c, _ := DigestToCID(digest.SHA256.FromString("hello"))
	if dec, _ := multihash.Decode(c.Hash()); string(dec.Digest) != string(sum[:]) {
		t.Fatal("sha256 multihash does not carry the digest bytes")
	}
	sum512 := sha512.Sum512([]byte("hello"))
	c, _ = DigestToCID(digest.SHA512.FromString("hello"))
	if dec, _ := multihash.Decode(c.Hash()); string(dec.Digest) != string(sum512[:]) {
		t.Fatal("sha512 multihash does not carry the digest bytes")
	}
}
