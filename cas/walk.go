package cas

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// walkBatch is how many entries Walk reads per index transaction, so that
// fn never runs inside one.
const walkBatch = 256

// Walk calls fn for every committed blob. fn runs outside any lock or
// index transaction, so it may use the store.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	var after []byte
	for {
		batch, next, err := s.walkBatch(after)
		if err != nil {
			return err
		}
		for _, info := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if len(batch) < walkBatch {
			return nil
		}
		after = next
	}
}

// walkBatch reads up to walkBatch entries after the key after (from the
// start if nil) and returns them with the last key read.
func (s *Store) walkBatch(after []byte) ([]Info, []byte, error) {
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.leave()
	var batch []Info
	var last []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlobs).Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
			if k != nil && string(k) == string(after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(batch) < walkBatch; k, v = c.Next() {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("read index %s: %w", k, err)
			}
			batch = append(batch, e.info(digest.Digest(k)))
			last = append(last[:0], k...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk: %w", err)
	}
	s.mu.Lock()
	for i := range batch {
		if t, ok := s.access[batch[i].Digest]; ok && t > batch[i].LastAccess.UnixNano() {
			batch[i].LastAccess = time.Unix(0, t)
		}
	}
	s.mu.Unlock()
	return batch, last, nil
}
