// Package objstore defines the shared object store that backs every agent's
// cache: the origin of blobs no peer holds, and the durable home of pushes.
//
// Keys follow one layout for every backend:
//
//	blobs/sha256/<hex>                               blob and manifest bytes
//	repositories/<name>/tags/<tag>                   text: the manifest digest
//	repositories/<name>/manifests/<hex>              empty marker: manifest in repository
//	repositories/<name>/referrers/<subject-hex>/<hex> empty marker for the referrers API
//
// Implementations live in subpackages (filestore, s3store); this package
// holds the interface, the key layout, an in-memory Store and a Chain.
package objstore

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// Sentinel errors. Implementations wrap them with %w.
var (
	ErrNotFound    = errors.New("objstore: not found")
	ErrReadOnly    = errors.New("objstore: read-only")
	ErrUnavailable = errors.New("objstore: unavailable")
	ErrInvalidKey  = errors.New("objstore: invalid key")
)

// Info describes a stored object.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Store is a flat key/value object store.
type Store interface {
	// Stat returns an object's size, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Get reads length bytes from offset (length < 0: to the end).
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Put stores r under key atomically: readers see all of it or none.
	// size is the exact length, or -1 if unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List yields the keys under prefix in lexical order.
	List(ctx context.Context, prefix string) iter.Seq2[string, error]
	// String names the store for logs and metrics (never with credentials).
	String() string
}
