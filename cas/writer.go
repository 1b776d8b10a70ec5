package cas

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
)

// writerState is where a Writer is in its life.
type writerState uint8

const (
	stateWriting    writerState = iota // accepting writes
	stateCommitting                    // Commit is verifying and publishing
	stateCommitted                     // the blob is in place
	stateFailed                        // aborted or failed verification
)

// readBackSize is the buffer used to hash bytes back from the temp file.
const readBackSize = 256 << 10

var (
	errAborted      = errors.New("cas: write aborted")
	errWriterClosed = errors.New("cas: writer closed")
)

// Writer writes one blob. Sequential Write and positioned WriteAt may be
// mixed (parallel range downloads); the digest is computed over the bytes in
// order as the contiguous prefix grows.
//
// Every byte is written at most once: a write that overlaps bytes already
// written (or being written by another call) skips them, so the bytes that
// were hashed are the bytes in the file.
type Writer struct {
	s    *Store
	d    digest.Digest
	size int64 // expected size, -1 if unknown
	opts WriteOptions
	f    *os.File // the temp file, written with WriteAt
	wb   writeback

	// h and buf belong to the goroutine that set hashing.
	h   hash.Hash
	buf []byte

	mu       sync.Mutex
	path     string // the temp file; the final path once renamed
	state    writerState
	err      error // why the write failed (stateFailed)
	claimed  spans // bytes written or being written
	written  spans // bytes on disk
	inflight int   // WriteAt calls between claiming and recording
	hashed   int64 // length of the prefix fed to h
	hashing  bool  // a goroutine is feeding h
	hashErr  error // reading bytes back failed
	// verified is set by Commit once every byte is there and matches the
	// digest, before the fsync and the rename: followers may deliver the
	// blob as correct from then on (Follower.Verified).
	verified bool
	info     Info // set at commit
	changed  chan struct{}
	// fileRefs counts the holders of f: the writer until it commits or
	// fails, and every Follower sharing it. The last one closes f, so a
	// thousand followers cost no extra descriptors.
	fileRefs int
}

var (
	_ io.Writer   = (*Writer)(nil)
	_ io.WriterAt = (*Writer)(nil)
)

// Create starts writing blob d of the given size (-1 if unknown). It fails
// with ErrExists if d is committed, ErrInProgress if another writer has it.
func (s *Store) Create(ctx context.Context, d digest.Digest, size int64, opts WriteOptions) (*Writer, error) {
	if err := validateDigest(d); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	if size < -1 {
		return nil, fmt.Errorf("create %s: invalid size %d", d, size)
	}
	switch opts.State {
	case 0:
		opts.State = StateReplicated
	case StateLocal, StateReplicated:
	default:
		return nil, fmt.Errorf("create %s: invalid state %d", d, opts.State)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	unlock := s.keys.lock(d)
	defer unlock()

	s.mu.Lock()
	_, busy := s.writers[d]
	s.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("create %s: %w", d, ErrInProgress)
	}
	if _, err := os.Lstat(s.blobPath(d)); err == nil {
		return nil, fmt.Errorf("create %s: %w", d, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create %s: %w", d, err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, incompleteDir), d.Encoded()[:12]+"-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", d, err)
	}
	w := &Writer{s: s, d: d, size: size, opts: opts, f: f, path: f.Name(), h: d.Algorithm().Hash(), fileRefs: 1}
	s.mu.Lock()
	s.writers[d] = w
	s.mu.Unlock()
	if s.closing.Load() { // Close may have missed it
		w.Abort(ErrClosed)
		return nil, ErrClosed
	}
	return w, nil
}

// Write appends at the end of the contiguous prefix.
func (w *Writer) Write(p []byte) (int, error) {
	return w.WriteAt(p, w.Written())
}

// WriteAt writes p at off.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("write %s at %d: negative offset", w.d, off)
	}
	end := off + int64(len(p))
	w.mu.Lock()
	if w.state != stateWriting {
		err := w.closedErr()
		w.mu.Unlock()
		return 0, err
	}
	if w.size >= 0 && end > w.size {
		w.mu.Unlock()
		return 0, fmt.Errorf("write %s at %d: %d bytes past the size %d: %w", w.d, off, end-w.size, w.size, ErrSizeMismatch)
	}
	gaps := w.claimed.missing(off, end)
	for _, g := range gaps {
		w.claimed = w.claimed.add(g.start, g.end)
	}
	w.inflight++
	w.mu.Unlock()

	n, mine, unwritten, werr := len(p), make([]span, 0, len(gaps)), []span(nil), error(nil)
	for i, g := range gaps {
		m, err := w.f.WriteAt(p[g.start-off:g.end-off], g.start)
		if m > 0 {
			mine = append(mine, span{g.start, g.start + int64(m)})
		}
		if err != nil {
			at := g.start + int64(m)
			werr = fmt.Errorf("write %s at %d: %w", w.d, at, err)
			w.s.noteWriteErr(err)
			n = int(at - off)
			unwritten = append([]span{{at, g.end}}, gaps[i+1:]...)
			break
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight--
	for _, u := range unwritten {
		w.claimed = w.claimed.remove(u.start, u.end)
	}
	wrote := 0
	for _, m := range mine {
		w.written = w.written.add(m.start, m.end)
		wrote += int(m.end - m.start)
	}
	if wrote > 0 && w.wb.due(wrote) {
		w.startWriteback()
	}
	w.broadcast()
	w.advanceHash(p, off, mine)
	return n, werr
}

// closedErr explains why a write is refused; w.mu is held.
func (w *Writer) closedErr() error {
	if w.state == stateFailed {
		return w.err
	}
	return fmt.Errorf("write %s: %w", w.d, errWriterClosed)
}

// advanceHash feeds h up to the contiguous prefix, unless another goroutine
// is already doing it (it will see this call's bytes: it rechecks the prefix
// under w.mu before it stops). Bytes this call wrote (mine, from p at off)
// are hashed from memory, others are read back from the file. w.mu is held
// on entry and exit.
func (w *Writer) advanceHash(p []byte, off int64, mine []span) {
	if w.hashing || w.hashErr != nil {
		return
	}
	w.hashing = true
	for w.hashed < w.written.prefix() {
		from, to := w.hashed, w.written.prefix()
		w.mu.Unlock()
		err := w.hashRange(from, to, p, off, mine)
		w.mu.Lock()
		if err != nil {
			w.hashErr = err
			break
		}
		w.hashed = to
	}
	w.hashing = false
	w.broadcast()
}

func (w *Writer) hashRange(from, to int64, p []byte, off int64, mine []span) error {
	for from < to {
		next, inline := to, false
		for _, m := range mine {
			if m.start <= from && from < m.end {
				next, inline = min(to, m.end), true
				break
			}
			if m.start > from {
				next = min(next, m.start)
			}
		}
		if inline {
			w.h.Write(p[from-off : next-off])
		} else if err := w.readBack(from, next); err != nil {
			return err
		}
		from = next
	}
	return nil
}

// readBack hashes [from, to) from the temp file.
func (w *Writer) readBack(from, to int64) error {
	if w.buf == nil {
		w.buf = make([]byte, readBackSize)
	}
	for from < to {
		n := min(int64(len(w.buf)), to-from)
		m, err := w.f.ReadAt(w.buf[:n], from)
		w.h.Write(w.buf[:m])
		from += int64(m)
		if err != nil && from < to {
			return fmt.Errorf("hash %s at %d: %w", w.d, from, err)
		}
	}
	return nil
}

// Size returns the blob's declared size (-1 when unknown).
func (w *Writer) Size() int64 { return w.size }

// Written returns the length of the contiguous prefix written so far.
func (w *Writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written.prefix()
}

// wait returns a channel closed at the next change; w.mu is held.
func (w *Writer) wait() <-chan struct{} {
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	return w.changed
}

// broadcast wakes everyone waiting for a change; w.mu is held.
func (w *Writer) broadcast() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// releaseFile drops one reference to f and closes it after the last.
func (w *Writer) releaseFile() {
	w.mu.Lock()
	w.fileRefs--
	last := w.fileRefs == 0
	w.mu.Unlock()
	if last {
		_ = w.f.Close()
	}
}

// Abort discards the write; followers fail with cause. Safe after Commit (no-op).
func (w *Writer) Abort(cause error) {
	if cause == nil {
		cause = errAborted
	}
	w.fail(fmt.Errorf("write %s aborted: %w", w.d, cause), true)
}

// fail ends the write with err: the file is removed, followers wake up and
// fail, and the digest is free again. With abort, only a write not yet
// committing fails; otherwise anything not yet finished does.
func (w *Writer) fail(err error, abort bool) {
	w.mu.Lock()
	if w.state == stateCommitted || w.state == stateFailed || (abort && w.state != stateWriting) {
		w.mu.Unlock()
		return
	}
	w.state = stateFailed
	w.err = err
	if rmErr := os.Remove(w.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		w.s.log.Warn("remove failed write", "digest", w.d, "path", w.path, "err", rmErr)
	}
	w.broadcast()
	w.mu.Unlock()
	w.releaseFile()

	w.s.mu.Lock()
	if w.s.writers[w.d] == w {
		delete(w.s.writers, w.d)
	}
	w.s.mu.Unlock()
	w.s.log.Debug("write failed", "digest", w.d, "err", err)
}
