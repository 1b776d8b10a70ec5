package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt reports a committed blob whose file no longer matches its
// digest (changed on disk behind the store's back). Verify removes it.
var ErrCorrupt = errors.New("cas: blob corrupt on disk")

// scrubState tracks which blob files have been checked since Open. A blob
// committed by this process was verified while it was written; a blob
// found on disk at Open was not, until Verify reads it.
type scrubState struct {
	mu         sync.Mutex
	unverified map[digest.Digest]struct{}
	calls      map[verifyKey]*verifyCall
}

// verifyKey names a Verify in flight. A paced read (the scrub) is not
// shared with an unpaced caller (a request waiting to serve the blob).
type verifyKey struct {
	d     digest.Digest
	paced bool
}

// verifyCall is one Verify in flight; concurrent callers for the same
// digest wait for it instead of reading the file again.
type verifyCall struct {
	done chan struct{}
	err  error
}

// loadUnverified marks every indexed blob as not yet checked; Open calls
// it after reconcile.
func (s *Store) loadUnverified() error {
	m := make(map[digest.Digest]struct{})
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, _ []byte) error {
			m[digest.Digest(k)] = struct{}{}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	s.scrub.mu.Lock()
	s.scrub.unverified = m
	s.scrub.calls = make(map[verifyKey]*verifyCall)
	s.scrub.mu.Unlock()
	return nil
}

// forgetVerified drops d from the unverified set (it was removed, or it
// was just checked).
func (s *Store) forgetVerified(d digest.Digest) {
	s.scrub.mu.Lock()
	delete(s.scrub.unverified, d)
	s.scrub.mu.Unlock()
}

// NeedsVerify reports whether d's file was on disk when the store opened
// and has not been checked since.
func (s *Store) NeedsVerify(d digest.Digest) bool {
	s.scrub.mu.Lock()
	defer s.scrub.mu.Unlock()
	_, ok := s.scrub.unverified[d]
	return ok
}

// Unverified is how many blobs found at Open have not been checked yet.
func (s *Store) Unverified() int {
	s.scrub.mu.Lock()
	defer s.scrub.mu.Unlock()
	return len(s.scrub.unverified)
}

// Verify reads d's file and checks it against its digest and indexed size,
// reading at most bytesPerSec bytes per second (0: no limit). A blob that
// does not match is removed (OnChange sees a Removed event, so it is no
// longer announced) and the error wraps ErrCorrupt; the caller fetches it
// again. Concurrent calls for one digest share one read (a paced scrub's
// read is not shared with an unpaced caller, who would wait for the pace).
func (s *Store) Verify(ctx context.Context, d digest.Digest, bytesPerSec int64) error {
	if err := validateDigest(d); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	key := verifyKey{d: d, paced: bytesPerSec > 0}
	s.scrub.mu.Lock()
	if c := s.scrub.calls[key]; c != nil {
		s.scrub.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("verify %s: %w", d, ctx.Err())
		}
	}
	c := &verifyCall{done: make(chan struct{})}
	s.scrub.calls[key] = c
	s.scrub.mu.Unlock()

	c.err = s.verify(ctx, d, bytesPerSec)
	s.scrub.mu.Lock()
	delete(s.scrub.calls, key)
	if c.err == nil {
		delete(s.scrub.unverified, d)
	}
	s.scrub.mu.Unlock()
	close(c.done)
	return c.err
}

func (s *Store) verify(ctx context.Context, d digest.Digest, bytesPerSec int64) error {
	f, size, err := s.openForVerify(d)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	h := d.Algorithm().Hash()
	n, err := copyPaced(ctx, h, f, bytesPerSec)
	if err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	got := digest.NewDigest(d.Algorithm(), h)
	if got == d && n == size {
		return nil
	}
	reason := fmt.Sprintf("read %d bytes hashing to %s, indexed size %d", n, got, size)
	removed, rerr := s.removeCorrupt(d, fi)
	if rerr != nil {
		return fmt.Errorf("verify %s: %s: %w (and removing it failed: %v)", d, reason, ErrCorrupt, rerr)
	}
	if removed {
		s.log.Error("blob corrupt on disk; removed", "digest", d, "detail", reason)
		s.emit(Event{Kind: Removed, Digest: d, Size: size})
	}
	return fmt.Errorf("verify %s: %s: %w", d, reason, ErrCorrupt)
}

// openForVerify opens d's committed file without recording an access.
func (s *Store) openForVerify(d digest.Digest) (*os.File, int64, error) {
	if err := s.enter(); err != nil {
		return nil, 0, err
	}
	defer s.leave()
	e, ok, err := s.lookup(d)
	if err != nil {
		return nil, 0, fmt.Errorf("verify %s: %w", d, err)
	}
	if !ok {
		return nil, 0, fmt.Errorf("verify %s: %w", d, ErrNotFound)
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("verify %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("verify %s: %w", d, err)
	}
	return f, e.size, nil
}

// removeCorrupt removes d if its file is still the one that was read (a
// delete and a fresh commit may have replaced it meanwhile).
func (s *Store) removeCorrupt(d digest.Digest, read os.FileInfo) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.leave()
	unlock := s.keys.lock(d)
	defer unlock()
	now, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !os.SameFile(now, read) {
		return false, nil
	}
	var size int64
	found := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		e, ok, err := getEntry(b, d)
		if err != nil || !ok {
			return err
		}
		if err := os.Remove(s.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		size, found = e.size, true
		return b.Delete([]byte(d))
	})
	if err != nil || !found {
		return false, err
	}
	s.removed(d, size)
	return true, nil
}

// copyPaced copies src to dst, at most bytesPerSec bytes per second when
// bytesPerSec > 0, until EOF or ctx ends.
func copyPaced(ctx context.Context, dst io.Writer, src io.Reader, bytesPerSec int64) (int64, error) {
	buf := make([]byte, 256<<10)
	if bytesPerSec > 0 && bytesPerSec < int64(len(buf)) {
		buf = buf[:max(bytesPerSec, 4<<10)]
	}
	start := time.Now()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := src.Read(buf)
		if k > 0 {
			dst.Write(buf[:k]) // a hash never fails
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if bytesPerSec <= 0 {
			continue
		}
		due := time.Duration(float64(n) / float64(bytesPerSec) * float64(time.Second))
		if wait := due - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return n, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// ScrubConfig configures background verification of the blob files.
type ScrubConfig struct {
	// BytesPerSecond bounds the read rate of the scrub (0: no limit).
	BytesPerSecond int64
	// Interval between full passes over every blob; 0 runs only the first
	// pass, over the blobs found at Open.
	Interval time.Duration
	// OnCorrupt, if set, is called for every corrupt blob removed.
	OnCorrupt func(d digest.Digest, err error)
}

// ScrubResult reports one pass.
type ScrubResult struct {
	Blobs   int
	Bytes   int64
	Corrupt int
}

// Scrub verifies every committed blob (only those found at Open and not
// checked since, when onlyUnverified) at cfg.BytesPerSecond.
func (s *Store) Scrub(ctx context.Context, cfg ScrubConfig, onlyUnverified bool) (ScrubResult, error) {
	var res ScrubResult
	err := s.Walk(ctx, func(info Info) error {
		if onlyUnverified && !s.NeedsVerify(info.Digest) {
			return nil
		}
		err := s.Verify(ctx, info.Digest, cfg.BytesPerSecond)
		switch {
		case err == nil:
			res.Blobs++
			res.Bytes += info.Size
		case errors.Is(err, ErrCorrupt):
			res.Corrupt++
			if cfg.OnCorrupt != nil {
				cfg.OnCorrupt(info.Digest, err)
			}
		case errors.Is(err, ErrNotFound):
			// Evicted or deleted since the walk listed it.
		default:
			return err
		}
		return nil
	})
	return res, err
}

// RunScrub checks the blobs found at Open (the files a crash, a disk fault
// or an operator may have changed while the agent was down), then every
// blob each cfg.Interval, until ctx ends.
func (s *Store) RunScrub(ctx context.Context, cfg ScrubConfig) error {
	onlyUnverified := true
	for {
		start := time.Now()
		res, err := s.Scrub(ctx, cfg, onlyUnverified)
		switch {
		case ctx.Err() != nil, errors.Is(err, ErrClosed):
			return nil
		case err != nil:
			s.log.Warn("scrub", "err", err)
		default:
			level := slog.LevelDebug
			if res.Blobs > 0 || res.Corrupt > 0 {
				level = slog.LevelInfo
			}
			s.log.Log(ctx, level, "scrub pass done", "blobs", res.Blobs, "bytes", res.Bytes, "corrupt", res.Corrupt,
				"took", time.Since(start).Round(time.Millisecond).String())
		}
		if cfg.Interval <= 0 {
			return nil
		}
		onlyUnverified = false
		t := time.NewTimer(cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.closed:
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
