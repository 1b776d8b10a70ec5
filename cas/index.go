package cas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// bucketBlobs maps a digest string to its encoded entry.
var bucketBlobs = []byte("blobs")

// entryVersion is the first byte of every encoded entry.
const entryVersion = 1

// entry is a blob's record in the index.
type entry struct {
	size      int64
	mediaType string
	state     State
	pinned    bool
	atime     int64 // last access, unix nanoseconds
}

// encode lays an entry out as
// version(1) state(1) pinned(1) size(8) atime(8) mediaType(rest).
func (e entry) encode() []byte {
	b := make([]byte, 0, 19+len(e.mediaType))
	b = append(b, entryVersion, byte(e.state), 0)
	if e.pinned {
		b[2] = 1
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.size))
	b = binary.BigEndian.AppendUint64(b, uint64(e.atime))
	return append(b, e.mediaType...)
}

func decodeEntry(b []byte) (entry, error) {
	if len(b) < 19 || b[0] != entryVersion {
		return entry{}, errors.New("malformed index entry")
	}
	return entry{
		state:     State(b[1]),
		pinned:    b[2] == 1,
		size:      int64(binary.BigEndian.Uint64(b[3:])),
		atime:     int64(binary.BigEndian.Uint64(b[11:])),
		mediaType: string(b[19:]),
	}, nil
}

func (e entry) info(d digest.Digest) Info {
	return Info{
		Digest:     d,
		Size:       e.size,
		MediaType:  e.mediaType,
		State:      e.state,
		Pinned:     e.pinned,
		LastAccess: time.Unix(0, e.atime),
	}
}

// getEntry reads d's entry; ok is false if there is none.
func getEntry(b *bolt.Bucket, d digest.Digest) (e entry, ok bool, err error) {
	v := b.Get([]byte(d))
	if v == nil {
		return entry{}, false, nil
	}
	e, err = decodeEntry(v)
	if err != nil {
		return entry{}, false, fmt.Errorf("read index %s: %w", d, err)
	}
	return e, true, nil
}

func putEntry(b *bolt.Bucket, d digest.Digest, e entry) error {
	if err := b.Put([]byte(d), e.encode()); err != nil {
		return fmt.Errorf("write index %s: %w", d, err)
	}
	return nil
}

// lookup returns d's entry with any pending access time applied.
func (s *Store) lookup(d digest.Digest) (e entry, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		e, ok, err = getEntry(tx.Bucket(bucketBlobs), d)
		return err
	})
	if err != nil || !ok {
		return entry{}, false, err
	}
	s.mu.Lock()
	if t, found := s.access[d]; found && t > e.atime {
		e.atime = t
	}
	s.mu.Unlock()
	return e, true, nil
}

// update applies fn to d's entry in one write transaction; ErrNotFound if
// there is none. The caller holds d's key lock.
func (s *Store) update(d digest.Digest, fn func(*entry)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		e, ok, err := getEntry(b, d)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("update %s: %w", d, ErrNotFound)
		}
		fn(&e)
		return putEntry(b, d, e)
	})
}

// touch records an access to d; flushAccess writes it to the index later,
// so the read path never waits for a write transaction.
func (s *Store) touch(d digest.Digest) {
	now := s.now().UnixNano()
	s.mu.Lock()
	if now > s.access[d] {
		s.access[d] = now
	}
	s.mu.Unlock()
}

// flushAccess writes the pending access times to the index in one
// transaction. On failure they are kept for the next flush.
func (s *Store) flushAccess() error {
	s.mu.Lock()
	pending := s.access
	if len(pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.access = make(map[digest.Digest]int64)
	s.mu.Unlock()

	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for d, t := range pending {
			e, ok, err := getEntry(b, d)
			if err != nil {
				return err
			}
			if !ok || e.atime >= t {
				continue // deleted meanwhile, or already newer
			}
			e.atime = t
			if err := putEntry(b, d, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		for d, t := range pending {
			if t > s.access[d] {
				s.access[d] = t
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("flush access times: %w", err)
	}
	return nil
}
