// Package cas is the agent's local content-addressable blob store.
//
// Blobs are stored by digest under a data directory. Every write is hashed
// while it is written, verified against the digest the writer named, fsynced
// and renamed into place atomically, so a blob file that exists under a
// digest always matches it. Readers can follow a blob that is still being
// written. A small bbolt index records size, media type, last access, state
// (local-only or replicated) and pins; eviction removes least-recently-used,
// unpinned, replicated blobs once usage passes the high watermark, until it
// is below the low watermark.
//
// On-disk layout:
//
//	<dir>/
//	├── index.db                   bbolt: blob metadata
//	├── blobs/
//	│   ├── sha256/ab/<hex>        committed blobs, sharded by the first two hex chars
//	│   └── sha512/cd/<hex>
//	├── incomplete/<random>        writes in progress (removed at start-up)
//	└── uploads/<id>               registry upload sessions (removed at start-up)
package cas

import (
	"errors"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound       = errors.New("cas: blob not found")
	ErrExists         = errors.New("cas: blob already committed")
	ErrInProgress     = errors.New("cas: blob is already being written")
	ErrDigestMismatch = errors.New("cas: digest mismatch")
	ErrSizeMismatch   = errors.New("cas: size mismatch")
	ErrUploadUnknown  = errors.New("cas: upload unknown")
	ErrPinned         = errors.New("cas: blob is pinned or not replicated")
	ErrClosed         = errors.New("cas: store closed")

	// ErrWriteFailed: the write a Follower follows was aborted or failed
	// verification. Nothing of it is committed; another write may follow.
	ErrWriteFailed = errors.New("cas: write failed")
)

// State says whether a blob's content is safe in the object store.
type State uint8

const (
	// StateLocal blobs exist only here (pushed, not yet replicated): never evicted.
	StateLocal State = 1
	// StateReplicated blobs can be fetched again from the object store or peers.
	StateReplicated State = 2
)

// Config configures a Store.
type Config struct {
	// Dir is the store's root directory; created if missing.
	Dir string
	// MaxBytes caps the cache; 0 means the cache may use the filesystem's
	// capacity (bytes cached now + free bytes).
	MaxBytes int64
	// HighWatermark (fraction of the cap, default 0.90) starts eviction.
	HighWatermark float64
	// LowWatermark (fraction of the cap, default 0.75) is where eviction stops.
	LowWatermark float64
	// OnChange, if set, is called (never under a lock) after a blob is
	// committed (Added) or removed by Delete or eviction (Removed).
	OnChange func(Event)
	// Logger receives debug and warning logs; nil means silent.
	Logger *slog.Logger
}

// EventKind is the kind of a change.
type EventKind uint8

const (
	// Added: a blob was committed.
	Added EventKind = 1
	// Removed: a blob was deleted or evicted.
	Removed EventKind = 2
)

// Event reports that a blob was added or removed.
type Event struct {
	Kind    EventKind
	Digest  digest.Digest
	Size    int64
	Evicted bool
}

// Info is a committed blob's metadata.
type Info struct {
	Digest     digest.Digest
	Size       int64
	MediaType  string
	State      State
	Pinned     bool
	LastAccess time.Time
}

// WriteOptions describe a blob being written.
type WriteOptions struct {
	MediaType string
	// State recorded at commit; zero means StateReplicated.
	State State
}

// Usage is the store's current occupancy and limits, in bytes.
type Usage struct {
	Bytes int64
	Blobs int
	Limit int64
	High  int64
	Low   int64
}

// EvictResult reports one eviction pass.
type EvictResult struct {
	Blobs int
	Bytes int64
}
