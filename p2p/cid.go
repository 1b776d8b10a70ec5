package p2p

import (
	"encoding/hex"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/opencontainers/go-digest"
)

// DigestToCID maps an OCI digest to the CID it is announced under: CIDv1,
// raw codec, and a multihash of the digest's own bytes (sha2-256 or
// sha2-512).
func DigestToCID(d digest.Digest) (cid.Cid, error) {
	if err := d.Validate(); err != nil {
		return cid.Undef, fmt.Errorf("digest %q: %w", d, err)
	}
	var code uint64
	switch d.Algorithm() {
	case digest.SHA256:
		code = multihash.SHA2_256
	case digest.SHA512:
		code = multihash.SHA2_512
	default:
		return cid.Undef, fmt.Errorf("digest %q: unsupported algorithm", d)
	}
	sum, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return cid.Undef, fmt.Errorf("digest %q: %w", d, err)
	}
	mh, err := multihash.Encode(sum, code)
	if err != nil {
		return cid.Undef, fmt.Errorf("digest %q: %w", d, err)
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

// CIDToDigest is the inverse of DigestToCID.
func CIDToDigest(c cid.Cid) (digest.Digest, error) {
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return "", fmt.Errorf("cid %s: %w", c, err)
	}
	var alg digest.Algorithm
	switch dec.Code {
	case multihash.SHA2_256:
		alg = digest.SHA256
	case multihash.SHA2_512:
		alg = digest.SHA512
	default:
		return "", fmt.Errorf("cid %s: unsupported multihash %s", c, dec.Name)
	}
	d := digest.NewDigestFromEncoded(alg, hex.EncodeToString(dec.Digest))
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("cid %s: %w", c, err)
	}
	return d, nil
}
