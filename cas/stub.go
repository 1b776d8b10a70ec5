package cas

// THIS FILE IS A CONTRACT STUB: the cas helper replaces it with the real
// implementation (same exported signatures) and deletes this file.

import (
	"context"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// Store is the content-addressable store. Safe for concurrent use.
type Store struct{}

// DefaultConfig returns the defaults for a store rooted at dir.
func DefaultConfig(dir string) Config { panic("unimplemented") }

// Validate reports a configuration error.
func (c Config) Validate() error { panic("unimplemented") }

// Open opens (creating if needed) the store, removes leftovers of
// interrupted writes and uploads, and reconciles the index with the files.
func Open(ctx context.Context, cfg Config) (*Store, error) { panic("unimplemented") }

// Run does background work (batched access-time updates, eviction when a
// commit pushed usage over the high watermark) until ctx ends.
func (s *Store) Run(ctx context.Context) error { panic("unimplemented") }

// Close flushes and closes the index. Writers still open fail.
func (s *Store) Close() error { panic("unimplemented") }

// Stat returns a committed blob's metadata, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (Info, error) { panic("unimplemented") }

// Open opens a committed blob for reading and records the access.
func (s *Store) Open(ctx context.Context, d digest.Digest) (*os.File, Info, error) {
	panic("unimplemented")
}

// Create starts writing blob d of the given size (-1 if unknown). It fails
// with ErrExists if d is committed, ErrInProgress if another writer has it.
func (s *Store) Create(ctx context.Context, d digest.Digest, size int64, opts WriteOptions) (*Writer, error) {
	panic("unimplemented")
}

// Follow returns a reader of d that follows an in-progress write (blocking
// for bytes not yet written) or reads the committed blob; ErrNotFound if neither.
func (s *Store) Follow(ctx context.Context, d digest.Digest) (*Follower, error) {
	panic("unimplemented")
}

// NewUpload starts a registry upload session whose digest is known only at commit.
func (s *Store) NewUpload(ctx context.Context) (*Upload, error) { panic("unimplemented") }

// ResumeUpload returns the live upload with that id, or ErrUploadUnknown.
func (s *Store) ResumeUpload(ctx context.Context, id string) (*Upload, error) {
	panic("unimplemented")
}

// SetState records whether d is replicated.
func (s *Store) SetState(ctx context.Context, d digest.Digest, st State) error {
	panic("unimplemented")
}

// Pin protects d from eviction; Unpin removes the protection.
func (s *Store) Pin(ctx context.Context, d digest.Digest) error { panic("unimplemented") }

// Unpin removes a pin set by Pin.
func (s *Store) Unpin(ctx context.Context, d digest.Digest) error { panic("unimplemented") }

// Delete removes a committed blob.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error { panic("unimplemented") }

// Usage returns current usage and limits.
func (s *Store) Usage() Usage { panic("unimplemented") }

// Evict runs one eviction pass now if usage is over the high watermark.
func (s *Store) Evict(ctx context.Context) (EvictResult, error) { panic("unimplemented") }

// Walk calls fn for every committed blob.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error { panic("unimplemented") }

// Writer writes one blob. Sequential Write and positioned WriteAt may be
// mixed (parallel range downloads); the digest is computed over the bytes in
// order as the contiguous prefix grows.
type Writer struct{}

var _ io.Writer = (*Writer)(nil)
var _ io.WriterAt = (*Writer)(nil)

// Write appends at the end of the contiguous prefix.
func (w *Writer) Write(p []byte) (int, error) { panic("unimplemented") }

// WriteAt writes p at off.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) { panic("unimplemented") }

// Written returns the length of the contiguous prefix written so far.
func (w *Writer) Written() int64 { panic("unimplemented") }

// Commit verifies size and digest, fsyncs and renames the blob into place.
// On ErrDigestMismatch or ErrSizeMismatch nothing is kept and followers fail.
func (w *Writer) Commit(ctx context.Context) (Info, error) { panic("unimplemented") }

// Abort discards the write; followers fail with cause. Safe after Commit (no-op).
func (w *Writer) Abort(cause error) { panic("unimplemented") }

// Follower reads a blob that may still be being written.
type Follower struct{}

var _ io.ReadSeekCloser = (*Follower)(nil)
var _ io.ReaderAt = (*Follower)(nil)

// Read reads from the current offset, blocking until bytes are there.
func (f *Follower) Read(p []byte) (int, error) { panic("unimplemented") }

// ReadAt blocks until [off, off+len(p)) is written (or the blob's end).
func (f *Follower) ReadAt(p []byte, off int64) (int, error) { panic("unimplemented") }

// Seek sets the offset for Read (io.SeekEnd is relative to Size).
func (f *Follower) Seek(off int64, whence int) (int64, error) { panic("unimplemented") }

// Size is the blob's expected size (-1 if the writer did not know it).
func (f *Follower) Size() int64 { panic("unimplemented") }

// Wait blocks until the blob is committed (nil) or the write failed.
func (f *Follower) Wait(ctx context.Context) error { panic("unimplemented") }

// Close releases the follower.
func (f *Follower) Close() error { panic("unimplemented") }

// Upload is a registry upload session: appended in order, committed under
// the digest the client names at the end.
type Upload struct{}

// ID is the upload's opaque identifier.
func (u *Upload) ID() string { panic("unimplemented") }

// Size is the number of bytes received.
func (u *Upload) Size() int64 { panic("unimplemented") }

// Append copies r to the end of the upload; it returns the bytes appended.
func (u *Upload) Append(ctx context.Context, r io.Reader) (int64, error) { panic("unimplemented") }

// Commit verifies the upload against d and commits it. On ErrDigestMismatch
// the upload stays open (the client may retry with the right digest).
func (u *Upload) Commit(ctx context.Context, d digest.Digest, opts WriteOptions) (Info, error) {
	panic("unimplemented")
}

// Cancel discards the upload.
func (u *Upload) Cancel(ctx context.Context) error { panic("unimplemented") }
