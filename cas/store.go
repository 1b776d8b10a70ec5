package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// accessFlushInterval is how often Run writes batched access times.
const accessFlushInterval = 5 * time.Second

// Store is the content-addressable store. Safe for concurrent use.
type Store struct {
	cfg  Config
	dir  string
	log  *slog.Logger
	db   *bolt.DB
	now  func() time.Time
	keys keyLocks

	// gate is held shared by every operation that uses the index and
	// exclusively by Close, which waits for them to finish.
	gate    sync.RWMutex
	closing atomic.Bool
	closed  chan struct{} // closed by Close; ends Run

	evictMu sync.Mutex    // one eviction pass at a time
	evictCh chan struct{} // a commit pushed usage over the high watermark

	mu      sync.Mutex
	writers map[digest.Digest]*Writer
	uploads map[string]*Upload
	access  map[digest.Digest]int64 // access times not yet in the index
	bytes   int64
	blobs   int
}

// DefaultConfig returns the defaults for a store rooted at dir.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:           dir,
		MaxBytes:      0,    // the filesystem's capacity
		HighWatermark: 0.90, // start evicting at 90% of the cap
		LowWatermark:  0.75, // stop at 75%
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("cas config: dir is empty")
	case c.MaxBytes < 0:
		return fmt.Errorf("cas config: max bytes %d is negative", c.MaxBytes)
	case !(c.HighWatermark > 0 && c.HighWatermark <= 1):
		return fmt.Errorf("cas config: high watermark %v outside (0,1]", c.HighWatermark)
	case !(c.LowWatermark > 0 && c.LowWatermark <= 1):
		return fmt.Errorf("cas config: low watermark %v outside (0,1]", c.LowWatermark)
	case c.LowWatermark >= c.HighWatermark:
		return fmt.Errorf("cas config: low watermark %v not below high watermark %v", c.LowWatermark, c.HighWatermark)
	}
	return nil
}

// Open opens (creating if needed) the store, removes leftovers of
// interrupted writes and uploads, and reconciles the index with the files.
func Open(ctx context.Context, cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:     cfg,
		dir:     cfg.Dir,
		log:     log,
		now:     time.Now,
		closed:  make(chan struct{}),
		evictCh: make(chan struct{}, 1),
		writers: make(map[digest.Digest]*Writer),
		uploads: make(map[string]*Upload),
		access:  make(map[digest.Digest]int64),
	}
	if err := prepareDirs(s.dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// The timeout turns a second store on the same directory (bbolt's
	// flock) into an error instead of a hang.
	s.db, err = bolt.Open(filepath.Join(s.dir, indexFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.db.Close()
		}
	}()
	if err := s.reconcile(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.log.Debug("opened blob store", "dir", s.dir, "blobs", s.blobs, "bytes", s.bytes)
	return s, nil
}

// Run does background work (batched access-time updates, eviction when a
// commit pushed usage over the high watermark) until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(accessFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.flush(); err != nil {
				s.log.Warn("flush access times", "err", err)
			}
			return nil
		case <-s.closed:
			return nil
		case <-t.C:
			if err := s.flush(); err != nil {
				s.log.Warn("flush access times", "err", err)
			}
		case <-s.evictCh:
			if _, err := s.Evict(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				s.log.Warn("evict", "err", err)
			}
		}
	}
}

// flush writes pending access times unless the store is closed.
func (s *Store) flush() error {
	if err := s.enter(); err != nil {
		return nil // Close flushes
	}
	defer s.leave()
	return s.flushAccess()
}

// Close flushes and closes the index. Writers still open fail.
func (s *Store) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.mu.Lock()
	writers := make([]*Writer, 0, len(s.writers))
	for _, w := range s.writers {
		writers = append(writers, w)
	}
	uploads := make([]*Upload, 0, len(s.uploads))
	for _, u := range s.uploads {
		uploads = append(uploads, u)
	}
	s.mu.Unlock()
	for _, w := range writers {
		w.Abort(ErrClosed)
	}
	for _, u := range uploads {
		u.close()
	}

	s.gate.Lock() // wait for operations in flight
	defer s.gate.Unlock()
	close(s.closed)
	err := s.flushAccess()
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close index: %w", cerr)
	}
	return err
}

// enter admits an operation that uses the index; leave ends it.
func (s *Store) enter() error {
	s.gate.RLock()
	if isClosed(s.closed) {
		s.gate.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.gate.RUnlock() }

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Stat returns a committed blob's metadata, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (Info, error) {
	if err := validateDigest(d); err != nil {
		return Info{}, fmt.Errorf("stat: %w", err)
	}
	if err := s.enter(); err != nil {
		return Info{}, err
	}
	defer s.leave()
	e, ok, err := s.lookup(d)
	if err != nil {
		return Info{}, err
	}
	if !ok {
		return Info{}, fmt.Errorf("stat %s: %w", d, ErrNotFound)
	}
	return e.info(d), nil
}

// Open opens a committed blob for reading and records the access.
func (s *Store) Open(ctx context.Context, d digest.Digest) (*os.File, Info, error) {
	if err := validateDigest(d); err != nil {
		return nil, Info{}, fmt.Errorf("open: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, Info{}, err
	}
	defer s.leave()
	f, e, err := s.openBlob(d)
	if err != nil {
		return nil, Info{}, err
	}
	return f, e.info(d), nil
}

// openBlob opens d's file and records the access.
func (s *Store) openBlob(d digest.Digest) (*os.File, entry, error) {
	e, ok, err := s.lookup(d)
	if err != nil {
		return nil, entry{}, err
	}
	if !ok {
		return nil, entry{}, fmt.Errorf("open %s: %w", d, ErrNotFound)
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, entry{}, fmt.Errorf("open %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, entry{}, fmt.Errorf("open %s: %w", d, err)
	}
	s.touch(d)
	e.atime = max(e.atime, s.now().UnixNano())
	return f, e, nil
}

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
}

// emit calls OnChange; never call it with a lock held (the gate included:
// OnChange may call back into the store).
func (s *Store) emit(ev Event) {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(ev)
	}
}

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
