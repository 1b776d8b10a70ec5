package cas

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// evictChunk bounds how many blobs one index transaction removes.
const evictChunk = 64

// Usage returns current usage and limits.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	u := Usage{Bytes: s.bytes, Blobs: s.blobs}
	s.mu.Unlock()
	u.Limit = s.cfg.MaxBytes
	if u.Limit <= 0 {
		free, err := freeBytes(s.dir)
		if err != nil {
			s.log.Warn("read free space", "dir", s.dir, "err", err)
		}
		u.Limit = u.Bytes + free
	}
	u.High = int64(float64(u.Limit) * s.cfg.HighWatermark)
	u.Low = int64(float64(u.Limit) * s.cfg.LowWatermark)
	return u
}

// freeBytes returns the bytes available to us on dir's filesystem.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// signalEvict asks Run for an eviction pass if usage is over the high
// watermark.
func (s *Store) signalEvict() {
	if u := s.Usage(); u.Bytes > u.High {
		select {
		case s.evictCh <- struct{}{}:
		default: // a pass is already pending
		}
	}
}

// candidate is a blob eviction may remove.
type candidate struct {
	d     digest.Digest
	size  int64
	atime int64
}

// Evict runs one eviction pass now if usage is over the high watermark.
func (s *Store) Evict(ctx context.Context) (EvictResult, error) {
	res, evicted, err := s.evictPass(ctx)
	for _, c := range evicted { // outside every lock: OnChange may call us
		s.emit(Event{Kind: Removed, Digest: c.d, Size: c.size, Evicted: true})
	}
	return res, err
}

// evictPass removes blobs until usage is at the low watermark and returns
// the blobs it removed.
func (s *Store) evictPass(ctx context.Context) (res EvictResult, all []candidate, err error) {
	if err := s.enter(); err != nil {
		return EvictResult{}, nil, err
	}
	defer s.leave()
	s.evictMu.Lock()
	defer s.evictMu.Unlock()

	u := s.Usage()
	if u.Bytes <= u.High {
		return EvictResult{}, nil, nil
	}
	cands, err := s.candidates()
	if err != nil {
		return EvictResult{}, nil, fmt.Errorf("evict: %w", err)
	}
	for len(cands) > 0 {
		over := s.Usage().Bytes - u.Low
		if over <= 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, all, err
		}
		n, sum := 0, int64(0)
		for n < len(cands) && n < evictChunk && sum < over {
			sum += cands[n].size
			n++
		}
		evicted, err := s.evict(cands[:n])
		cands = cands[n:]
		for _, c := range evicted {
			res.Blobs++
			res.Bytes += c.size
		}
		all = append(all, evicted...)
		if err != nil {
			return res, all, fmt.Errorf("evict: %w", err)
		}
	}
	if after := s.Usage(); after.Bytes > u.Low {
		s.log.Warn("cache over its low watermark and nothing left to evict",
			"bytes", after.Bytes, "low", u.Low, "high", u.High, "evicted", res.Blobs)
	} else {
		s.log.Debug("evicted blobs", "blobs", res.Blobs, "bytes", res.Bytes, "usage", after.Bytes)
	}
	return res, all, nil
}

// candidates lists the replicated, unpinned blobs, least recently used first.
func (s *Store) candidates() ([]candidate, error) {
	var cands []candidate
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("read index %s: %w", k, err)
			}
			if e.state == StateReplicated && !e.pinned {
				cands = append(cands, candidate{d: digest.Digest(k), size: e.size, atime: e.atime})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for i, c := range cands {
		if t, ok := s.access[c.d]; ok && t > c.atime {
			cands[i].atime = t
		}
	}
	s.mu.Unlock()
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.atime, b.atime), cmp.Compare(a.d, b.d))
	})
	return cands, nil
}

// evict removes the candidates that are still evictable (replicated, not
// pinned, no live writer) in one index transaction and returns them.
func (s *Store) evict(cands []candidate) ([]candidate, error) {
	for _, c := range cands {
		unlock := s.keys.lock(c.d) // only one pass holds several: evictMu
		defer unlock()
	}
	s.mu.Lock()
	live := make(map[digest.Digest]bool)
	for _, c := range cands {
		if s.writers[c.d] != nil {
			live[c.d] = true
		}
	}
	s.mu.Unlock()

	var evicted []candidate
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for _, c := range cands {
			e, ok, err := getEntry(b, c.d)
			if err != nil {
				return err
			}
			if !ok || live[c.d] || e.state != StateReplicated || e.pinned {
				continue // changed since the candidates were listed
			}
			// The file goes first: if the transaction then fails, the
			// entries without files are dropped at the next Open.
			if err := os.Remove(s.blobPath(c.d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", c.d, err)
			}
			if err := b.Delete([]byte(c.d)); err != nil {
				return fmt.Errorf("drop %s: %w", c.d, err)
			}
			evicted = append(evicted, candidate{d: c.d, size: e.size, atime: e.atime})
		}
		return nil
	})
	if err != nil {
		s.log.Error("eviction transaction failed; files may be gone while indexed until the next start", "err", err)
		return nil, err
	}
	for _, c := range evicted {
		s.removed(c.d, c.size)
	}
	return evicted, nil
}
