package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"go.etcd.io/bbolt"
)

// idleCheck is how often an idle worker looks at the queue even without a
// Notify: a safety net, not the wake-up path.
const idleCheck = 5 * time.Second

// Run replicates queued items until ctx is done, then returns nil. It
// returns an error if the database fails or another Run is active.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer o.running.Store(false)

	idle := time.NewTimer(idleCheck)
	defer idle.Stop()
	failures := 0
	for ctx.Err() == nil {
		e, ok, err := o.head()
		if err != nil {
			return err
		}
		if !ok {
			idle.Reset(idleCheck)
			select {
			case <-ctx.Done():
			case <-o.wake:
			case <-idle.C:
			}
			continue
		}
		it, err := e.item, e.bad
		if err == nil {
			err = o.replicate(ctx, it)
		}
		if ctx.Err() != nil {
			break
		}
		if replicated := err == nil; replicated || o.drop(it, err) {
			// Remove first: OnDone then sees only later items for the key.
			// A crash in between loses the callback, not the replication.
			// Waiters wake after OnDone, once the item is fully handled.
			if err := o.remove(e.seq); err != nil {
				return err
			}
			if replicated && o.cfg.OnDone != nil {
				o.cfg.OnDone(it)
			}
			o.finish(replicated)
			failures = 0
			continue
		}
		failures++
		delay := o.backoff(failures)
		o.setErr(err)
		o.log.WarnContext(ctx, "replication failed, retrying",
			"key", it.Key, "store", o.cfg.Store.String(), "attempt", failures, "retry_in", delay, "err", err)
		if !sleep(ctx, delay) {
			break
		}
	}
	return nil
}

// drop reports whether err means the item can never be replicated; it logs
// why the item is dropped.
func (o *Outbox) drop(it Item, err error) bool {
	switch {
	case errors.Is(err, ErrSourceGone):
		o.log.Warn("dropping replication of a blob that is gone locally", "key", it.Key, "blob", it.Blob, "err", err)
	case errors.Is(err, objstore.ErrInvalidKey), errors.Is(err, ErrInvalidItem):
		o.log.Error("dropping replication item the store cannot take", "key", it.Key, "err", err)
	default:
		return false
	}
	return true
}

// entry is a queued item as read from the bucket.
type entry struct {
	seq  uint64
	item Item
	// bad is set when the stored record cannot be decoded or is invalid.
	bad error
}

// head returns the oldest queued item, if any.
func (o *Outbox) head() (e entry, ok bool, err error) {
	err = o.cfg.DB.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(o.bucket)
		if b == nil {
			return fmt.Errorf("outbox: bucket %s missing", o.bucket)
		}
		k, v := b.Cursor().First()
		if k == nil {
			return nil
		}
		ok = true
		e.seq = binary.BigEndian.Uint64(k)
		e.item, e.bad = decodeItem(v)
		return nil
	})
	return e, ok, err
}

// replicate writes one item to the store.
func (o *Outbox) replicate(ctx context.Context, it Item) error {
	store := o.cfg.Store
	switch {
	case it.Delete:
		return store.Delete(ctx, it.Key)
	case it.Blob != "":
		rc, size, err := o.cfg.Source.OpenBlob(ctx, it.Blob)
		if err != nil {
			return fmt.Errorf("open blob %s: %w", it.Blob, err)
		}
		defer rc.Close()
		return store.Put(ctx, it.Key, rc, size)
	default:
		return store.Put(ctx, it.Key, bytes.NewReader(it.Data), int64(len(it.Data)))
	}
}

// remove deletes the item at seq from the bucket and the index. Until
// finish, Wait still counts it as queued.
func (o *Outbox) remove(seq uint64) error {
	o.mu.Lock()
	o.inflight = seq
	o.mu.Unlock()
	err := o.cfg.DB.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(o.bucket)
		if b == nil {
			return fmt.Errorf("outbox: bucket %s missing", o.bucket)
		}
		return b.Delete(seqKey(seq))
	})
	if err != nil {
		o.mu.Lock()
		o.inflight = 0
		o.mu.Unlock()
		return fmt.Errorf("outbox: remove item %d: %w", seq, err)
	}
	o.pending.Add(-1)
	o.mu.Lock()
	o.index.remove(seq)
	o.mu.Unlock()
	return nil
}

// finish ends the handling of the removed item and wakes waiters.
func (o *Outbox) finish(replicated bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inflight = 0
	close(o.progress)
	o.progress = make(chan struct{})
	if replicated {
		o.lastErr, o.lastAt = nil, time.Time{}
	}
}

func (o *Outbox) setErr(err error) {
	o.mu.Lock()
	o.lastErr, o.lastAt = err, time.Now()
	o.mu.Unlock()
}

// backoff returns the delay before retry number n (n >= 1): MinBackoff
// doubled per failure, capped at MaxBackoff, with "equal jitter" (half
// fixed, half random) so agents that failed together do not retry together.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.cfg.MinBackoff
	for i := 1; i < n && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.cfg.MaxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(d-half+1)
}

// sleep waits for d or ctx; it returns false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
