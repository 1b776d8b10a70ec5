// Package outbox is the agent's durable replication queue: the blobs,
// manifests and tags pushed to this node, waiting to be written to the
// shared object store.
//
// Items live in a bbolt bucket keyed by the bucket's sequence, so they are
// replayed in the order they were enqueued, after a crash too. One worker
// (Run) replicates the head item and removes it only once the store
// accepted it; while the head fails, later items wait, because the store
// must see blobs before the manifests that reference them and manifests
// before the tags that name them. Failures are retried with exponential
// backoff and jitter. Store.Put is idempotent (keys are addressed by
// digest or rewritten whole), so replaying an item is safe. Latest and
// LatestUnder expose the queued items by key, so the agent can show its own
// pending pushes and deletes before the store has them.
//
// Bucket layout:
//
//	<Config.Bucket>/
//	└── <8-byte big-endian sequence>  JSON record of one Item
package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/cas/objstore"
	"go.etcd.io/bbolt"
)

// Sentinel errors.
var (
	// ErrSourceGone is wrapped by a Source whose blob no longer exists
	// locally; the item is dropped with a warning, not retried.
	ErrSourceGone = errors.New("outbox: source blob gone")
	// ErrInvalidItem is returned by Enqueue for an item that could never be
	// replicated.
	ErrInvalidItem = errors.New("outbox: invalid item")
	// ErrRunning is returned by Run when another Run is active.
	ErrRunning = errors.New("outbox: already running")
)

// Item is one unit of replication work.
type Item struct {
	// Key is the object-store key to write or delete.
	Key string
	// Blob, if set, names the local blob whose content is written to Key.
	Blob digest.Digest
	// Data is the inline content written to Key when Blob is empty (tag
	// text, empty markers).
	Data []byte
	// Delete removes Key instead of writing it.
	Delete bool
}

// validate reports why it could never be replicated.
func (it Item) validate() error {
	if err := objstore.ValidateKey(it.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidItem, err)
	}
	switch {
	case it.Blob != "" && len(it.Data) > 0:
		return fmt.Errorf("%w: %s has both a blob and inline data", ErrInvalidItem, it.Key)
	case it.Delete && (it.Blob != "" || len(it.Data) > 0):
		return fmt.Errorf("%w: delete of %s carries content", ErrInvalidItem, it.Key)
	case it.Blob != "" && objstore.BlobKey(it.Blob) == "":
		return fmt.Errorf("%w: %s: bad digest %q", ErrInvalidItem, it.Key, it.Blob)
	}
	return nil
}

// Source opens local blobs for replication.
type Source interface {
	// OpenBlob returns the blob's content and size. An error wrapping
	// ErrSourceGone drops the item.
	OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
}

// Config configures an Outbox. New fills zero durations and Bucket with
// the defaults noted below.
type Config struct {
	// DB holds the queue; the caller opens and closes it.
	DB *bbolt.DB
	// Bucket names the queue's bucket (default "outbox").
	Bucket string
	// Store receives the items.
	Store objstore.Store
	// Source opens the blobs that Blob items name.
	Source Source
	// OnDone, if set, is called by the worker after the store accepted an
	// item and it was removed from the queue (e.g. to mark the blob
	// replicated); Latest then shows only later items for the key. A crash
	// between the removal and the call loses the call, not the replication:
	// the caller reconciles at start-up (the agent re-queues local blobs).
	OnDone func(Item)
	// Logger receives warnings; nil means silent.
	Logger *slog.Logger
	// MinBackoff is the first retry delay (default 100ms).
	MinBackoff time.Duration
	// MaxBackoff caps the retry delay (default 30s).
	MaxBackoff time.Duration
}

// Validate reports a missing dependency or an inconsistent setting.
func (c Config) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("outbox: config: DB is nil")
	case c.Store == nil:
		return errors.New("outbox: config: Store is nil")
	case c.Source == nil:
		return errors.New("outbox: config: Source is nil")
	case c.MinBackoff < 0 || c.MaxBackoff < 0:
		return errors.New("outbox: config: negative backoff")
	case c.MaxBackoff != 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("outbox: config: MinBackoff %s exceeds MaxBackoff %s", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Ticket identifies a point in the queue: every item enqueued up to and
// including the call that returned it. The zero Ticket is already done.
type Ticket struct {
	seq uint64
}

// Outbox is a durable FIFO queue of replication work.
type Outbox struct {
	cfg     Config
	bucket  []byte
	log     *slog.Logger
	wake    chan struct{}
	pending atomic.Int64
	running atomic.Bool

	mu       sync.Mutex
	progress chan struct{} // closed and replaced when an item is handled
	inflight uint64        // sequence removed from the bucket, OnDone pending
	index    keyIndex      // queued items by key
	lastErr  error
	lastAt   time.Time
}

// New returns an Outbox over cfg.DB, creating its bucket if needed.
func New(cfg Config) (*Outbox, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "outbox"
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &Outbox{
		cfg:      cfg,
		bucket:   []byte(cfg.Bucket),
		log:      cfg.Logger,
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
		index:    newKeyIndex(),
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	err := cfg.DB.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(o.bucket)
		if err != nil {
			return err
		}
		o.pending.Store(int64(b.Stats().KeyN))
		o.index.load(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: open bucket %s: %w", cfg.Bucket, err)
	}
	return o, nil
}

// Enqueue durably appends items in one transaction and wakes the worker.
func (o *Outbox) Enqueue(ctx context.Context, items ...Item) (Ticket, error) {
	if err := ctx.Err(); err != nil {
		return Ticket{}, err
	}
	var t Ticket
	err := o.cfg.DB.Update(func(tx *bbolt.Tx) error {
		var err error
		t, err = o.EnqueueTx(tx, items...)
		return err
	})
	if err != nil {
		return Ticket{}, err
	}
	o.Notify()
	return t, nil
}

// EnqueueTx appends items inside the caller's write transaction, so they
// commit or roll back with the caller's metadata. The worker is woken when
// the transaction commits (calling Notify afterwards is harmless). The
// Ticket of a transaction that rolled back means nothing.
func (o *Outbox) EnqueueTx(tx *bbolt.Tx, items ...Item) (Ticket, error) {
	if len(items) == 0 {
		return Ticket{}, nil
	}
	for _, it := range items {
		if err := it.validate(); err != nil {
			return Ticket{}, err
		}
	}
	b := tx.Bucket(o.bucket)
	if b == nil {
		return Ticket{}, fmt.Errorf("outbox: bucket %s missing", o.bucket)
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seq, err := b.NextSequence()
		if err != nil {
			return Ticket{}, fmt.Errorf("outbox: enqueue %s: %w", it.Key, err)
		}
		val, err := encodeItem(it)
		if err != nil {
			return Ticket{}, fmt.Errorf("outbox: enqueue %s: %w", it.Key, err)
		}
		if err := b.Put(seqKey(seq), val); err != nil {
			return Ticket{}, fmt.Errorf("outbox: enqueue %s: %w", it.Key, err)
		}
		seqs[i] = seq
	}
	queued := slices.Clone(items)
	for i := range queued {
		queued[i].Data = bytes.Clone(queued[i].Data)
	}
	tx.OnCommit(func() {
		o.mu.Lock()
		for i, it := range queued {
			o.index.add(seqs[i], it)
		}
		o.mu.Unlock()
		o.pending.Add(int64(len(queued)))
		o.Notify()
	})
	return Ticket{seq: seqs[len(seqs)-1]}, nil
}

// Notify wakes the worker to look for new items. It never blocks.
func (o *Outbox) Notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Pending returns the number of items in the queue.
func (o *Outbox) Pending() int { return int(o.pending.Load()) }

// LastError returns when the most recent replication failure happened and
// the failure; the error is nil once an item has been replicated since.
func (o *Outbox) LastError() (time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastAt, o.lastErr
}

// Wait blocks until every item up to t has left the queue (replicated and
// OnDone returned, or dropped because it can never be replicated), or ctx
// is done.
func (o *Outbox) Wait(ctx context.Context, t Ticket) error {
	if t.seq == 0 {
		return nil
	}
	for {
		// Take the channel before looking, so a change in between wakes us.
		o.mu.Lock()
		ch := o.progress
		o.mu.Unlock()
		done, err := o.doneThrough(t.seq)
		if err != nil {
			return err
		}
		if done {
			o.mu.Lock()
			busy := o.inflight != 0 && o.inflight <= t.seq
			o.mu.Unlock()
			if !busy {
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("outbox: wait: %w", context.Cause(ctx))
		}
	}
}

// doneThrough reports whether no item with a sequence <= seq is queued.
func (o *Outbox) doneThrough(seq uint64) (bool, error) {
	var done bool
	err := o.cfg.DB.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(o.bucket)
		if b == nil {
			return fmt.Errorf("outbox: bucket %s missing", o.bucket)
		}
		k, _ := b.Cursor().First()
		done = k == nil || binary.BigEndian.Uint64(k) > seq
		return nil
	})
	return done, err
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}
