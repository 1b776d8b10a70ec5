package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
)

// BlobSource is what a node serves to its peers; the agent implements it
// over its content-addressable store.
type BlobSource interface {
	// OpenBlob opens a committed blob, or one still being fetched (the
	// reader then follows the writer). size is the blob's full size. The
	// error wraps ErrNotFound when the blob is absent.
	OpenBlob(ctx context.Context, d digest.Digest) (r io.ReadSeekCloser, size int64, err error)
}

var _ BlobSource = (*MemorySource)(nil)

// MemorySource is an in-memory BlobSource for tests and the simulator.
type MemorySource struct {
	mu    sync.RWMutex
	blobs map[digest.Digest][]byte
}

// NewMemorySource returns an empty source.
func NewMemorySource() *MemorySource {
	return &MemorySource{blobs: make(map[digest.Digest][]byte)}
}

// Put stores b under its sha256 digest and returns the digest. b must not
// be modified afterwards.
func (m *MemorySource) Put(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	m.PutAs(d, b)
	return d
}

// PutAs stores b under d without checking that it matches (a test double
// for a peer that serves bad bytes).
func (m *MemorySource) PutAs(d digest.Digest, b []byte) {
	m.mu.Lock()
	m.blobs[d] = b
	m.mu.Unlock()
}

// Delete removes d.
func (m *MemorySource) Delete(d digest.Digest) {
	m.mu.Lock()
	delete(m.blobs, d)
	m.mu.Unlock()
}

// OpenBlob implements BlobSource.
func (m *MemorySource) OpenBlob(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	m.mu.RLock()
	b, ok := m.blobs[d]
	m.mu.RUnlock()
	if !ok {
		return nil, 0, fmt.Errorf("open %s: %w", d, ErrNotFound)
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
