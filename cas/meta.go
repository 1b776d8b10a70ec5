package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// SetState records whether d is replicated.
func (s *Store) SetState(ctx context.Context, d digest.Digest, st State) error {
	if st != StateLocal && st != StateReplicated {
		return fmt.Errorf("set state of %s: invalid state %d", d, st)
	}
	return s.modify(d, "set state", func(e *entry) { e.state = st })
}

// Pin protects d from eviction; Unpin removes the protection.
func (s *Store) Pin(ctx context.Context, d digest.Digest) error {
	return s.modify(d, "pin", func(e *entry) { e.pinned = true })
}

// Unpin removes a pin set by Pin.
func (s *Store) Unpin(ctx context.Context, d digest.Digest) error {
	return s.modify(d, "unpin", func(e *entry) { e.pinned = false })
}

func (s *Store) modify(d digest.Digest, op string, fn func(*entry)) error {
	if err := validateDigest(d); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	unlock := s.keys.lock(d)
	defer unlock()
	if err := s.update(d, fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Delete removes a committed blob.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := validateDigest(d); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	size, err := s.delete(d)
	if err != nil {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	s.log.Debug("deleted blob", "digest", d, "size", size)
	s.emit(Event{Kind: Removed, Digest: d, Size: size})
	return nil
}

func (s *Store) delete(d digest.Digest) (size int64, err error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	unlock := s.keys.lock(d)
	defer unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		e, ok, err := getEntry(b, d)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		// The file goes first: if the transaction then fails, the entry
		// without a file is dropped at the next Open.
		if err := os.Remove(s.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		size = e.size
		return b.Delete([]byte(d))
	})
	if err != nil {
		return 0, err
	}
	s.removed(d, size)
	return size, nil
}

// removed updates the usage counters after d's file and entry are gone.
func (s *Store) removed(d digest.Digest, size int64) {
	s.mu.Lock()
	s.bytes -= size
	s.blobs--
	delete(s.access, d)
	s.mu.Unlock()
	s.forgetVerified(d)
}
