package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
)

var errFollowerClosed = errors.New("cas: follower closed")

// Follower reads a blob that may still be being written.
//
// A Follower never reports io.EOF before the writer committed: until then a
// read past the written bytes blocks, and once the write failed every read
// returns an error wrapping the failure, so a reader can never mistake a
// partial or corrupt blob for a complete one.
type Follower struct {
	ctx  context.Context // bounds blocking reads, as documented on Follow
	d    digest.Digest
	w    *Writer  // nil if the blob was committed when Follow was called
	f    *os.File // the file; its descriptor survives the commit's rename
	size int64    // committed size, or the writer's expected size
	// shared says f is the writer's descriptor, released with releaseFile.
	shared bool

	done      chan struct{} // closed by Close: wakes blocked reads
	closeOnce sync.Once

	mu  sync.Mutex // serializes Read and Seek
	off int64
}

var (
	_ io.ReadSeekCloser = (*Follower)(nil)
	_ io.ReaderAt       = (*Follower)(nil)
)

// Follow returns a reader of d that follows an in-progress write (blocking
// for bytes not yet written) or reads the committed blob; ErrNotFound if neither.
// Reads that block return ctx.Err() once ctx ends.
func (s *Store) Follow(ctx context.Context, d digest.Digest) (*Follower, error) {
	if err := validateDigest(d); err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	s.mu.Lock()
	w := s.writers[d]
	s.mu.Unlock()
	if w != nil {
		fl, err := w.follow(ctx)
		if !errors.Is(err, ErrWriteFailed) {
			return fl, err
		}
		// A failed write wakes its followers before it leaves the map: to
		// one of them following the blob again, the digest is free (not
		// found), so it waits for the next write instead of failing.
	}
	// A writer leaves the map only after its blob is in the index, so a
	// blob missing here is neither being written nor committed.
	f, e, err := s.openBlob(d)
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	return &Follower{ctx: ctx, d: d, f: f, size: e.size, done: make(chan struct{})}, nil
}

// follow returns a Follower sharing w's descriptor (or with its own, if
// the writer already committed and closed it).
func (w *Writer) follow(ctx context.Context) (*Follower, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == stateFailed {
		return nil, fmt.Errorf("follow %s: %w: %w", w.d, ErrWriteFailed, w.err)
	}
	fl := &Follower{ctx: ctx, d: w.d, w: w, size: w.size, done: make(chan struct{})}
	if w.state == stateCommitted {
		fl.size = w.info.Size
	}
	if w.fileRefs > 0 {
		w.fileRefs++
		fl.f, fl.shared = w.f, true
		return fl, nil
	}
	f, err := os.Open(w.path) // under w.mu: not renamed or removed meanwhile
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", w.d, err)
	}
	fl.f = f
	return fl, nil
}

// await blocks until the bytes at off are readable: n bytes (or up to the
// end of the blob) when full, at least one byte otherwise. It returns how
// far the file may be read and whether the blob is committed; only a
// committed blob may be read to its end and report io.EOF.
func (f *Follower) await(off int64, n int, full bool) (limit int64, committed bool, err error) {
	if f.w == nil {
		return f.size, true, nil
	}
	w := f.w
	want := off + 1
	if full {
		want = off + int64(n)
	}
	w.mu.Lock()
	for {
		switch {
		case w.state == stateFailed:
			err := w.err
			w.mu.Unlock()
			return 0, false, fmt.Errorf("follow %s: %w: %w", f.d, ErrWriteFailed, err)
		case w.state == stateCommitted:
			size := w.info.Size
			w.mu.Unlock()
			return size, true, nil
		case w.written.extent(off) >= want:
			// The bytes at off are written (not necessarily those before:
			// a multi-source fetch fills ranges out of order).
			limit := w.written.extent(off)
			w.mu.Unlock()
			return limit, false, nil
		}
		ch := w.wait()
		w.mu.Unlock()
		select {
		case <-ch:
		case <-f.done:
			return 0, false, fmt.Errorf("follow %s: %w", f.d, errFollowerClosed)
		case <-f.ctx.Done():
			return 0, false, f.ctx.Err()
		}
		w.mu.Lock()
	}
}

// Read reads from the current offset, blocking until bytes are there.
func (f *Follower) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	limit, committed, err := f.await(f.off, len(p), false)
	if err != nil {
		return 0, err
	}
	if !committed {
		p = p[:min(int64(len(p)), limit-f.off)]
	}
	n, err := f.read(p, f.off, committed)
	f.off += int64(n)
	if committed && n > 0 && err == io.EOF {
		err = nil // the next Read reports it
	}
	return n, err
}

// ReadAt blocks until [off, off+len(p)) is written (or the blob's end).
func (f *Follower) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("follow %s: negative offset %d", f.d, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	_, committed, err := f.await(off, len(p), true)
	if err != nil {
		return 0, err
	}
	return f.read(p, off, committed)
}

// read reads from the file; before the commit it never reports io.EOF.
func (f *Follower) read(p []byte, off int64, committed bool) (int, error) {
	if isClosed(f.done) { // a shared descriptor stays open for the others
		return 0, fmt.Errorf("follow %s: %w", f.d, errFollowerClosed)
	}
	n, err := f.f.ReadAt(p, off)
	switch {
	case errors.Is(err, os.ErrClosed):
		return n, fmt.Errorf("follow %s: %w", f.d, errFollowerClosed)
	case err == io.EOF && !committed:
		return n, fmt.Errorf("follow %s at %d: %w", f.d, off+int64(n), io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		return n, fmt.Errorf("follow %s: %w", f.d, err)
	}
	return n, err
}

// Seek sets the offset for Read (io.SeekEnd is relative to Size).
func (f *Follower) Seek(off int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		size := f.Size()
		if size < 0 {
			return 0, fmt.Errorf("seek %s from end: size unknown", f.d)
		}
		off += size
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", f.d, whence)
	}
	if off < 0 {
		return 0, fmt.Errorf("seek %s: negative offset %d", f.d, off)
	}
	f.off = off
	return off, nil
}

// Size is the blob's expected size (-1 if the writer did not know it).
// Once the blob is committed it is the committed size.
func (f *Follower) Size() int64 {
	if f.w == nil || f.size >= 0 {
		return f.size
	}
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	if f.w.state == stateCommitted {
		return f.w.info.Size
	}
	return -1
}

// Wait blocks until the blob is committed (nil) or the write failed.
func (f *Follower) Wait(ctx context.Context) error {
	return f.awaitWriter(ctx, func(w *Writer) bool { return w.state == stateCommitted })
}

// Verified blocks until every byte of the blob is written and matches its
// digest (nil), or the write failed. It returns before Wait: the commit
// still has to make the blob durable and publish it, and may fail doing
// so (a full disk), but the bytes a follower read are the blob's.
func (f *Follower) Verified(ctx context.Context) error {
	return f.awaitWriter(ctx, func(w *Writer) bool { return w.state == stateCommitted || w.verified })
}

// awaitWriter blocks until ready (checked under w.mu) holds, the write failed
// or ctx ends.
func (f *Follower) awaitWriter(ctx context.Context, ready func(w *Writer) bool) error {
	if f.w == nil {
		return nil
	}
	w := f.w
	w.mu.Lock()
	for {
		switch {
		case ready(w):
			w.mu.Unlock()
			return nil
		case w.state == stateFailed:
			err := w.err
			w.mu.Unlock()
			return fmt.Errorf("follow %s: %w: %w", f.d, ErrWriteFailed, err)
		}
		ch := w.wait()
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
}

// Available is how many bytes from the blob's start can be read without
// waiting: its size once committed, else the writer's contiguous prefix.
func (f *Follower) Available() int64 {
	if f.w == nil {
		return f.size
	}
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	if f.w.state == stateCommitted {
		return f.w.info.Size
	}
	return f.w.written.prefix()
}

// Held returns the byte ranges [start, end) of the blob that can be read
// without waiting, in order: the whole blob once committed.
func (f *Follower) Held() [][2]int64 {
	if f.w == nil {
		return [][2]int64{{0, f.size}}
	}
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	if f.w.state == stateCommitted {
		return [][2]int64{{0, f.w.info.Size}}
	}
	out := make([][2]int64, len(f.w.written))
	for i, r := range f.w.written {
		out[i] = [2]int64{r.start, r.end}
	}
	return out
}

// Changes returns a channel closed at the blob's next change (bytes
// written, committed, or the write failed); nil once nothing will change
// (committed, or opened after the commit). Take it before reading the
// state (Held) so that no change between the two is missed.
func (f *Follower) Changes() <-chan struct{} {
	if f.w == nil {
		return nil
	}
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	if f.w.state == stateCommitted || f.w.state == stateFailed {
		return nil
	}
	return f.w.wait()
}

// Close releases the follower.
func (f *Follower) Close() error {
	var err error
	f.closeOnce.Do(func() {
		close(f.done)
		if f.shared {
			f.w.releaseFile()
			return
		}
		err = f.f.Close()
	})
	return err
}
