package cas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// appendBufSize is the copy buffer of Upload.Append.
const appendBufSize = 256 << 10

// Upload is a registry upload session: appended in order, committed under
// the digest the client names at the end.
type Upload struct {
	s    *Store
	id   string
	path string

	mu   sync.Mutex // serializes Append, Commit and Cancel
	f    *os.File
	h    hash.Hash // sha256 of the bytes so far
	size int64
	done bool // committed or cancelled

	closed atomic.Bool // the store closed: the file is closed, Open removes it
}

// NewUpload starts a registry upload session whose digest is known only at commit.
func (s *Store) NewUpload(ctx context.Context) (*Upload, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	id := randomID()
	path := filepath.Join(s.dir, uploadsDir, id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	u := &Upload{s: s, id: id, path: path, f: f, h: sha256.New()}
	s.mu.Lock()
	s.uploads[id] = u
	s.mu.Unlock()
	if s.closing.Load() { // Close may have missed it
		u.close()
		return nil, ErrClosed
	}
	return u, nil
}

// ResumeUpload returns the live upload with that id, or ErrUploadUnknown.
func (s *Store) ResumeUpload(ctx context.Context, id string) (*Upload, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.mu.Lock()
	u := s.uploads[id]
	s.mu.Unlock()
	if u == nil {
		return nil, fmt.Errorf("resume upload %q: %w", id, ErrUploadUnknown)
	}
	return u, nil
}

// ID is the upload's opaque identifier.
func (u *Upload) ID() string { return u.id }

// Size is the number of bytes received.
func (u *Upload) Size() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.size
}

// Append copies r to the end of the upload; it returns the bytes appended.
// After an error the bytes appended before it are kept.
func (u *Upload) Append(ctx context.Context, r io.Reader) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done || u.closed.Load() {
		return 0, fmt.Errorf("append to upload %s: %w", u.id, ErrUploadUnknown)
	}
	buf := make([]byte, appendBufSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			m, werr := u.f.WriteAt(buf[:n], u.size)
			u.h.Write(buf[:m]) // hash exactly what reached the file
			u.size += int64(m)
			total += int64(m)
			if werr != nil {
				u.s.noteWriteErr(werr)
				return total, fmt.Errorf("append to upload %s: %w", u.id, werr)
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("append to upload %s: %w", u.id, rerr)
		}
	}
}

// Commit verifies the upload against d and commits it. On ErrDigestMismatch
// the upload stays open (the client may retry with the right digest).
func (u *Upload) Commit(ctx context.Context, d digest.Digest, opts WriteOptions) (Info, error) {
	if err := validateDigest(d); err != nil {
		return Info{}, fmt.Errorf("commit upload: %w", err)
	}
	switch opts.State {
	case 0:
		opts.State = StateReplicated
	case StateLocal, StateReplicated:
	default:
		return Info{}, fmt.Errorf("commit upload %s: invalid state %d", u.id, opts.State)
	}
	info, added, err := u.commit(ctx, d, opts)
	if err != nil {
		return Info{}, err
	}
	if added {
		u.s.log.Debug("committed upload", "upload", u.id, "digest", d, "size", info.Size)
		u.s.emit(Event{Kind: Added, Digest: d, Size: info.Size})
		u.s.signalEvict()
	}
	return info, nil
}

func (u *Upload) commit(ctx context.Context, d digest.Digest, opts WriteOptions) (Info, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done || u.closed.Load() {
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, ErrUploadUnknown)
	}
	got, err := u.digest(ctx, d.Algorithm())
	if err != nil {
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	if got != d {
		return Info{}, false, fmt.Errorf("commit upload %s as %s: got %s: %w", u.id, d, got, ErrDigestMismatch)
	}
	if err := u.f.Sync(); err != nil {
		return Info{}, false, fmt.Errorf("commit upload %s: sync: %w", u.id, err)
	}

	s := u.s
	if err := s.enter(); err != nil {
		return Info{}, false, err
	}
	defer s.leave()
	unlock := s.keys.lock(d)
	info, added, err := u.publish(d, opts)
	unlock()
	if err != nil {
		return Info{}, false, err
	}
	u.discard()
	return info, added, nil
}

// digest returns the upload's digest with alg: the running sha256, or a
// second pass over the file for other algorithms.
func (u *Upload) digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 {
		return digest.NewDigest(alg, u.h), nil
	}
	h := alg.Hash()
	r := io.NewSectionReader(u.f, 0, u.size)
	if _, err := io.Copy(h, readerWithContext{ctx, r}); err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	return digest.NewDigest(alg, h), nil
}

// publish moves the verified upload into place, or finds d already
// committed (added false). The caller holds d's key lock and u.mu.
func (u *Upload) publish(d digest.Digest, opts WriteOptions) (Info, bool, error) {
	s := u.s
	if e, ok, err := s.lookup(d); err != nil {
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, err)
	} else if ok {
		return e.info(d), false, nil
	}
	shard, err := s.makeShard(d)
	if err != nil {
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	final := s.blobPath(d)
	if err := os.Rename(u.path, final); err != nil {
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	fail := func(err error) (Info, bool, error) {
		// Put the file back so that the upload stays usable.
		if rerr := os.Rename(final, u.path); rerr != nil {
			s.log.Warn("restore upload", "upload", u.id, "err", rerr)
		}
		return Info{}, false, fmt.Errorf("commit upload %s: %w", u.id, err)
	}
	if err := syncDir(shard); err != nil {
		return fail(err)
	}
	e := entry{size: u.size, mediaType: opts.MediaType, state: opts.State, atime: s.now().UnixNano()}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return putEntry(tx.Bucket(bucketBlobs), d, e)
	})
	if err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.bytes += u.size
	s.blobs++
	s.mu.Unlock()
	return e.info(d), true, nil
}

// Cancel discards the upload.
func (u *Upload) Cancel(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("cancel upload %s: %w", u.id, ErrUploadUnknown)
	}
	u.discard()
	return nil
}

// discard ends the session: closes and removes its file (if still there)
// and forgets it. u.mu is held.
func (u *Upload) discard() {
	u.done = true
	if !u.closed.Swap(true) {
		_ = u.f.Close()
	}
	if err := os.Remove(u.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		u.s.log.Warn("remove upload", "upload", u.id, "err", err)
	}
	u.s.mu.Lock()
	delete(u.s.uploads, u.id)
	u.s.mu.Unlock()
}

// close ends the session when the store closes; the next Open removes the
// file. It does not wait for u.mu: an Append blocked on its reader fails at
// its next write.
func (u *Upload) close() {
	if !u.closed.Swap(true) {
		_ = u.f.Close()
	}
}

// readerWithContext stops a copy when ctx ends.
type readerWithContext struct {
	ctx context.Context
	r   io.Reader
}

func (r readerWithContext) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
