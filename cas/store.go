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

	scrub scrubState // blobs not checked since Open (scrub.go)
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
func Open(ctx context.Context, cfg Config) (*Store, error) {
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
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// The index is opened first: its flock keeps a second store off this
	// directory before anything in it is touched, and the timeout turns
	// that into an error instead of a hang.
	db, err := bolt.Open(filepath.Join(s.dir, indexFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	s.db = db
	if err := prepareDirs(s.dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.reconcile(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := s.loadUnverified(); err != nil {
		_ = db.Close()
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

// Writing reports whether a write of d is in progress.
func (s *Store) Writing(d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writers[d] != nil
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

// emit calls OnChange; never call it with a lock held (the gate included:
// OnChange may call back into the store).
func (s *Store) emit(ev Event) {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(ev)
	}
}
