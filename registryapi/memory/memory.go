// Package memory is an in-memory registryapi.Backend: complete,
// concurrency-safe, and the reference the handler's tests and the
// simulator run against. Blob content is shared between repositories;
// each repository records which blobs it may serve.
package memory

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/registryapi"
)

var _ registryapi.Backend = (*Backend)(nil)

// Backend is an in-memory registryapi.Backend. The zero value is not
// usable; call New.
type Backend struct {
	mu      sync.RWMutex
	blobs   map[digest.Digest][]byte
	repos   map[string]*repository
	uploads map[string]*upload
}

// repository is one repository's view of the store.
type repository struct {
	blobs     map[digest.Digest]struct{}
	manifests map[digest.Digest]registryapi.Manifest
	tags      map[string]digest.Digest
	// subjects maps a manifest to its subject, for referrer cleanup.
	subjects map[digest.Digest]digest.Digest
	// referrers maps a subject to its referrers' descriptors.
	referrers map[digest.Digest]map[digest.Digest]ocispec.Descriptor
}

// New returns an empty Backend.
func New() *Backend {
	return &Backend{
		blobs:   map[digest.Digest][]byte{},
		repos:   map[string]*repository{},
		uploads: map[string]*upload{},
	}
}

// repo returns repository name, creating it; b.mu must be held for writing.
func (b *Backend) repo(name string) *repository {
	r, ok := b.repos[name]
	if !ok {
		r = &repository{
			blobs:     map[digest.Digest]struct{}{},
			manifests: map[digest.Digest]registryapi.Manifest{},
			tags:      map[string]digest.Digest{},
			subjects:  map[digest.Digest]digest.Digest{},
			referrers: map[digest.Digest]map[digest.Digest]ocispec.Descriptor{},
		}
		b.repos[name] = r
	}
	return r
}

// hasBlob reports whether repo may serve d; b.mu must be held.
func (b *Backend) hasBlob(repo string, d digest.Digest) bool {
	r, ok := b.repos[repo]
	if !ok {
		return false
	}
	_, ok = r.blobs[d]
	return ok
}

// PutBlob stores content as a blob of repo and returns its descriptor;
// a shortcut for seeding tests and simulations.
func (b *Backend) PutBlob(repo string, content []byte) ocispec.Descriptor {
	d := digest.SHA256.FromBytes(content)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.storeBlob(repo, d, bytes.Clone(content))
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}
}

// storeBlob records content under d in repo; b.mu must be held for writing.
func (b *Backend) storeBlob(repo string, d digest.Digest, content []byte) {
	if _, ok := b.blobs[d]; !ok {
		b.blobs[d] = content
	}
	b.repo(repo).blobs[d] = struct{}{}
}

// StatBlob implements registryapi.Backend.
func (b *Backend) StatBlob(_ context.Context, repo string, d digest.Digest) (ocispec.Descriptor, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.hasBlob(repo, d) {
		return ocispec.Descriptor{}, fmt.Errorf("%s in %s: %w", d, repo, registryapi.ErrBlobUnknown)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(b.blobs[d]))}, nil
}

// GetBlob implements registryapi.Backend.
func (b *Backend) GetBlob(_ context.Context, repo string, d digest.Digest) (registryapi.Blob, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.hasBlob(repo, d) {
		return registryapi.Blob{}, fmt.Errorf("%s in %s: %w", d, repo, registryapi.ErrBlobUnknown)
	}
	content := b.blobs[d] // never mutated once stored
	return registryapi.Blob{
		Size:    int64(len(content)),
		Content: nopCloser{bytes.NewReader(content)},
	}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// DeleteBlob implements registryapi.Backend. The content is dropped once no
// repository holds it.
func (b *Backend) DeleteBlob(_ context.Context, repo string, d digest.Digest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.hasBlob(repo, d) {
		return fmt.Errorf("%s in %s: %w", d, repo, registryapi.ErrBlobUnknown)
	}
	delete(b.repos[repo].blobs, d)
	for _, r := range b.repos {
		if _, ok := r.blobs[d]; ok {
			return nil
		}
	}
	delete(b.blobs, d)
	return nil
}

// MountBlob implements registryapi.Backend. With from == "" any stored copy
// of the blob is mounted.
func (b *Backend) MountBlob(_ context.Context, repo, from string, d digest.Digest) (ocispec.Descriptor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	content, ok := b.blobs[d]
	if !ok || (from != "" && !b.hasBlob(from, d)) {
		return ocispec.Descriptor{}, fmt.Errorf("mount %s from %q: %w", d, from, registryapi.ErrBlobUnknown)
	}
	b.repo(repo).blobs[d] = struct{}{}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}, nil
}

// StartUpload implements registryapi.Backend.
func (b *Backend) StartUpload(_ context.Context, repo string) (registryapi.Upload, error) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	u := &upload{b: b, repo: repo, id: hex.EncodeToString(raw[:])}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.uploads[u.id] = u
	return u, nil
}

// GetUpload implements registryapi.Backend.
func (b *Backend) GetUpload(_ context.Context, repo, id string) (registryapi.Upload, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	u, ok := b.uploads[id]
	if !ok || u.repo != repo {
		return nil, fmt.Errorf("upload %s in %s: %w", id, repo, registryapi.ErrBlobUploadUnknown)
	}
	return u, nil
}

// GetManifest implements registryapi.Backend.
func (b *Backend) GetManifest(_ context.Context, repo, ref string) (registryapi.Manifest, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	r, ok := b.repos[repo]
	if !ok {
		return registryapi.Manifest{}, fmt.Errorf("%s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
	}
	d, err := digest.Parse(ref)
	if err != nil {
		d, ok = r.tags[ref]
		if !ok {
			return registryapi.Manifest{}, fmt.Errorf("tag %s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
		}
	}
	m, ok := r.manifests[d]
	if !ok {
		return registryapi.Manifest{}, fmt.Errorf("%s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
	}
	return m, nil
}

// PutManifest implements registryapi.Backend.
func (b *Backend) PutManifest(_ context.Context, repo string, m registryapi.ManifestPut) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.repo(repo)
	r.manifests[m.Digest] = registryapi.Manifest{
		Digest:    m.Digest,
		MediaType: m.MediaType,
		Content:   bytes.Clone(m.Content),
	}
	if m.Tag != "" {
		r.tags[m.Tag] = m.Digest
	}
	if m.Subject != nil {
		s := m.Subject.Digest
		r.subjects[m.Digest] = s
		if r.referrers[s] == nil {
			r.referrers[s] = map[digest.Digest]ocispec.Descriptor{}
		}
		r.referrers[s][m.Digest] = m.Referrer
	}
	return nil
}

// DeleteManifest implements registryapi.Backend: a digest removes the
// manifest, its tags and its referrer entry; a tag removes the tag alone.
func (b *Backend) DeleteManifest(_ context.Context, repo, ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.repos[repo]
	if !ok {
		return fmt.Errorf("%s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
	}
	d, err := digest.Parse(ref)
	if err != nil {
		if _, ok := r.tags[ref]; !ok {
			return fmt.Errorf("tag %s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
		}
		delete(r.tags, ref)
		return nil
	}
	if _, ok := r.manifests[d]; !ok {
		return fmt.Errorf("%s in %s: %w", ref, repo, registryapi.ErrManifestUnknown)
	}
	delete(r.manifests, d)
	for t, td := range r.tags {
		if td == d {
			delete(r.tags, t)
		}
	}
	if s, ok := r.subjects[d]; ok {
		delete(r.referrers[s], d)
		if len(r.referrers[s]) == 0 {
			delete(r.referrers, s)
		}
		delete(r.subjects, d)
	}
	return nil
}

// Tags implements registryapi.Backend.
func (b *Backend) Tags(_ context.Context, repo string) ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	r, ok := b.repos[repo]
	if !ok {
		return nil, fmt.Errorf("%s: %w", repo, registryapi.ErrNameUnknown)
	}
	tags := make([]string, 0, len(r.tags))
	for t := range r.tags {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return tags, nil
}

// Repositories implements registryapi.Backend.
func (b *Backend) Repositories(_ context.Context) ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.repos))
	for n := range b.repos {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Referrers implements registryapi.Backend; the list is ordered by digest.
func (b *Backend) Referrers(_ context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	list := []ocispec.Descriptor{}
	r, ok := b.repos[repo]
	if !ok {
		return list, nil
	}
	for _, desc := range r.referrers[d] {
		list = append(list, desc)
	}
	slices.SortFunc(list, func(a, b ocispec.Descriptor) int {
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	return list, nil
}

// upload is an in-memory upload session.
type upload struct {
	b    *Backend
	repo string
	id   string

	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

// ID implements registryapi.Upload.
func (u *upload) ID() string { return u.id }

// Size implements registryapi.Upload.
func (u *upload) Size() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return int64(u.buf.Len())
}

// Append implements registryapi.Upload.
func (u *upload) Append(_ context.Context, r io.Reader) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("upload %s: %w", u.id, registryapi.ErrBlobUploadUnknown)
	}
	n, err := u.buf.ReadFrom(r)
	if err != nil {
		return n, fmt.Errorf("append to upload %s: %w", u.id, err)
	}
	return n, nil
}

// Commit implements registryapi.Upload.
func (u *upload) Commit(_ context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return ocispec.Descriptor{}, fmt.Errorf("upload %s: %w", u.id, registryapi.ErrBlobUploadUnknown)
	}
	if !d.Algorithm().Available() {
		return ocispec.Descriptor{}, fmt.Errorf("algorithm of %s: %w", d, registryapi.ErrDigestInvalid)
	}
	if got := d.Algorithm().FromBytes(u.buf.Bytes()); got != d {
		return ocispec.Descriptor{}, fmt.Errorf("upload %s is %s, not %s: %w", u.id, got, d, registryapi.ErrDigestInvalid)
	}
	content := bytes.Clone(u.buf.Bytes())
	u.done = true
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	delete(u.b.uploads, u.id)
	u.b.storeBlob(u.repo, d, content)
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}, nil
}

// Cancel implements registryapi.Upload.
func (u *upload) Cancel(_ context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	delete(u.b.uploads, u.id)
	return nil
}
