// Package registryapi serves the OCI Distribution API v1.1 over a Backend.
//
// It owns HTTP: routing, validation of names, references, digests, ranges
// and manifests, status codes and OCI error bodies. It holds no storage
// logic: everything it stores or reads goes through Backend.
package registryapi

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Errors a Backend returns (wrapped with %w); the handler maps each to its
// OCI error code and status. Any other error is a 500 UNKNOWN.
var (
	ErrBlobUnknown         = errors.New("blob unknown")
	ErrBlobUploadUnknown   = errors.New("blob upload unknown")
	ErrManifestUnknown     = errors.New("manifest unknown")
	ErrManifestBlobUnknown = errors.New("manifest references unknown blob")
	ErrNameUnknown         = errors.New("repository name unknown")
	ErrDigestInvalid       = errors.New("digest invalid")
	ErrSizeInvalid         = errors.New("size invalid")
	ErrUnsupported         = errors.New("unsupported")
	ErrDenied              = errors.New("denied")
	ErrTooLarge            = errors.New("too large")
	// ErrUnavailable: the origin needed to answer could not be reached (503).
	ErrUnavailable = errors.New("origin unavailable")
)

// Blob is readable blob content.
type Blob struct {
	// Size is the blob's full size in bytes.
	Size int64
	// Content reads the blob from offset 0. If it is an *os.File the
	// handler's copy can use sendfile.
	Content io.ReadSeekCloser
	// Verified, if non-nil, blocks until the content is known to match its
	// digest (the blob is still arriving). The handler withholds the last
	// byte of every response until it returns nil, and cuts the connection
	// if it returns an error, so no corrupt blob is delivered as complete.
	Verified func(ctx context.Context) error
}

// Manifest is a stored manifest.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
}

// ManifestPut is a validated manifest to store.
type ManifestPut struct {
	// Tag is the tag to point at the manifest, or "" when pushed by digest.
	Tag       string
	Digest    digest.Digest
	MediaType string
	Content   []byte
	// References are the blobs (config, layers) and, for an index, the
	// manifests this manifest refers to. The handler has checked they exist.
	References []ocispec.Descriptor
	// Subject is the manifest's subject, or nil.
	Subject *ocispec.Descriptor
	// Referrer is this manifest's descriptor as the referrers API lists it
	// (artifactType and annotations filled); meaningful when Subject != nil.
	Referrer ocispec.Descriptor
}

// Upload is an upload session in progress.
type Upload interface {
	ID() string
	// Size is the number of bytes received so far.
	Size() int64
	// Append adds r to the end of the upload and returns the bytes added.
	Append(ctx context.Context, r io.Reader) (int64, error)
	// Commit verifies the upload against d (ErrDigestInvalid on mismatch,
	// the upload stays open) and stores the blob.
	Commit(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error)
	// Cancel discards the upload.
	Cancel(ctx context.Context) error
}

// Backend stores and serves what the API names. Names, references and
// digests it receives are already validated. Blobs are content-addressed
// and may be shared between repositories.
type Backend interface {
	// StatBlob returns the blob's descriptor, or ErrBlobUnknown.
	StatBlob(ctx context.Context, repo string, d digest.Digest) (ocispec.Descriptor, error)
	// GetBlob opens the blob (possibly fetching it), or ErrBlobUnknown.
	GetBlob(ctx context.Context, repo string, d digest.Digest) (Blob, error)
	// DeleteBlob deletes the blob, or ErrBlobUnknown.
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error
	// MountBlob makes blob d (from repository from, "" if unspecified)
	// available in repo, or ErrBlobUnknown.
	MountBlob(ctx context.Context, repo, from string, d digest.Digest) (ocispec.Descriptor, error)

	// StartUpload opens a new upload session in repo.
	StartUpload(ctx context.Context, repo string) (Upload, error)
	// GetUpload returns a live upload session, or ErrBlobUploadUnknown.
	GetUpload(ctx context.Context, repo, id string) (Upload, error)

	// GetManifest resolves ref (a tag or a digest), or ErrManifestUnknown.
	GetManifest(ctx context.Context, repo, ref string) (Manifest, error)
	// PutManifest stores a validated manifest and its tag.
	PutManifest(ctx context.Context, repo string, m ManifestPut) error
	// DeleteManifest deletes a manifest by digest (and the tags pointing at
	// it) or a tag alone, or ErrManifestUnknown.
	DeleteManifest(ctx context.Context, repo, ref string) error

	// Tags lists repo's tags in lexical order, or ErrNameUnknown.
	Tags(ctx context.Context, repo string) ([]string, error)
	// Repositories lists repository names in lexical order.
	Repositories(ctx context.Context) ([]string, error)
	// Referrers lists the descriptors of manifests whose subject is d
	// (an empty list if none).
	Referrers(ctx context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error)
}

// ManifestObserver is an optional interface of a Backend: ManifestServed
// is called after a manifest was sent in full to a GET (not a HEAD, not a
// 304), when a client is about to pull what it names.
type ManifestObserver interface {
	ManifestServed(ctx context.Context, repo string, m Manifest)
}
