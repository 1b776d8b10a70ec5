package cas

import (
	"context"
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Commit verifies size and digest, fsyncs and renames the blob into place.
// On ErrDigestMismatch or ErrSizeMismatch nothing is kept and followers fail.
func (w *Writer) Commit(ctx context.Context) (Info, error) {
	w.mu.Lock()
	switch w.state {
	case stateCommitted:
		defer w.mu.Unlock()
		return w.info, nil
	case stateFailed:
		defer w.mu.Unlock()
		return Info{}, w.err
	case stateCommitting:
		w.mu.Unlock()
		return Info{}, fmt.Errorf("commit %s: already committing", w.d)
	}
	w.state = stateCommitting // refuses further writes
	for w.inflight > 0 || w.hashing {
		ch := w.wait()
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			err := fmt.Errorf("commit %s: %w", w.d, ctx.Err())
			w.fail(err, false)
			return Info{}, err
		}
		w.mu.Lock()
	}
	w.advanceHash(nil, 0, nil)
	written, hashErr := w.written, w.hashErr
	w.mu.Unlock()

	info, added, err := w.commit(written, hashErr)
	if err != nil {
		w.fail(err, false)
		return Info{}, err
	}
	if added {
		w.s.log.Debug("committed blob", "digest", w.d, "size", info.Size)
		w.s.emit(Event{Kind: Added, Digest: w.d, Size: info.Size})
		w.s.signalEvict()
	}
	return info, nil
}

// commit checks the bytes and publishes the blob. added is false when an
// upload committed the same digest meanwhile.
func (w *Writer) commit(written spans, hashErr error) (info Info, added bool, err error) {
	if hashErr != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, hashErr)
	}
	size := written.prefix()
	if len(written) > 1 {
		return Info{}, false, fmt.Errorf("commit %s: bytes missing after %d: %w", w.d, size, ErrSizeMismatch)
	}
	if w.size >= 0 && size != w.size {
		return Info{}, false, fmt.Errorf("commit %s: wrote %d bytes, want %d: %w", w.d, size, w.size, ErrSizeMismatch)
	}
	if got := digest.NewDigest(w.d.Algorithm(), w.h); got != w.d {
		return Info{}, false, fmt.Errorf("commit %s: got %s: %w", w.d, got, ErrDigestMismatch)
	}
	// The bytes are right: readers may finish while the disk catches up
	// (the sync of a large blob takes seconds when writeback lags).
	w.mu.Lock()
	w.verified = true
	w.broadcast()
	w.mu.Unlock()
	if err := w.f.Sync(); err != nil {
		return Info{}, false, fmt.Errorf("commit %s: sync: %w", w.d, err)
	}

	s := w.s
	if err := s.enter(); err != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, err)
	}
	defer s.leave()
	unlock := s.keys.lock(w.d)
	defer unlock()
	info, added, err = w.publish(size)
	if err != nil {
		w.fail(err, false) // under the key lock: nobody else publishes d meanwhile
		return Info{}, false, err
	}
	s.mu.Lock()
	delete(s.writers, w.d)
	if added {
		s.bytes += size
		s.blobs++
	}
	s.mu.Unlock()

	w.mu.Lock()
	w.state = stateCommitted
	w.info = info
	w.broadcast()
	w.mu.Unlock()
	w.releaseFile()
	return info, added, nil
}

// publish renames the verified temp file into place and records it in the
// index; the caller holds d's key lock.
func (w *Writer) publish(size int64) (Info, bool, error) {
	s := w.s
	if e, ok, err := s.lookup(w.d); err != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, err)
	} else if ok {
		// An upload committed the same digest: same bytes, keep that file
		// (and point late followers at it).
		w.mu.Lock()
		rmErr := os.Remove(w.path)
		w.path = s.blobPath(w.d)
		w.mu.Unlock()
		if rmErr != nil {
			s.log.Warn("remove temp file", "digest", w.d, "err", rmErr)
		}
		return e.info(w.d), false, nil
	}
	shard, err := s.makeShard(w.d)
	if err != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, err)
	}
	final := s.blobPath(w.d)
	w.mu.Lock() // Follow opens w.path under w.mu: it sees one name or the other
	err = os.Rename(w.path, final)
	if err == nil {
		w.path = final
	}
	w.mu.Unlock()
	if err != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, err)
	}
	if err := syncDir(shard); err != nil {
		return Info{}, false, fmt.Errorf("commit %s: sync %s: %w", w.d, shard, err)
	}
	e := entry{size: size, mediaType: w.opts.MediaType, state: w.opts.State, atime: s.now().UnixNano()}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return putEntry(tx.Bucket(bucketBlobs), w.d, e)
	})
	if err != nil {
		return Info{}, false, fmt.Errorf("commit %s: %w", w.d, err)
	}
	return e.info(w.d), true, nil
}
