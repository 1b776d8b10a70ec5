package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas/objstore"
	"go.etcd.io/bbolt"
)

// attempt is one Put the store saw.
type attempt struct {
	key string
	at  time.Time
}

// flakyStore fails every Put of failKey with ErrUnavailable until it has
// failed failures times (failures < 0: forever), recording every attempt.
func flakyStore(target objstore.Store, failKey string, failures int) (*funcStore, func() []attempt) {
	var mu sync.Mutex
	var log []attempt
	failed := 0
	s := &funcStore{Store: target, put: func(ctx context.Context, key string, r io.Reader, size int64) error {
		mu.Lock()
		log = append(log, attempt{key, time.Now()})
		fail := key == failKey && (failures < 0 || failed < failures)
		if fail {
			failed++
		}
		mu.Unlock()
		if fail {
			return fmt.Errorf("flaky: %w", objstore.ErrUnavailable)
		}
		return target.Put(ctx, key, r, size)
	}}
	return s, func() []attempt {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(log)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		items, src := image("app", "v1")
		target := newFileStore(t)
		const failures = 4
		store, attempts := flakyStore(target, items[1].Key, failures)
		o, err := outbox.New(outbox.Config{
			DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: store, Source: src,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := o.Enqueue(t.Context(), items...)
		if err != nil {
			t.Fatal(err)
		}
		start(t, o)

		synctest.Wait() // the worker is asleep after the first failure
		if at, err := o.LastError(); !errors.Is(err, objstore.ErrUnavailable) || at.IsZero() {
			t.Errorf("LastError = %v at %v, want ErrUnavailable", err, at)
		}
		if n := o.Pending(); n != len(items)-1 {
			t.Errorf("Pending while failing = %d, want %d", n, len(items)-1)
		}
		if err := o.Wait(t.Context(), ticket); err != nil {
			t.Fatal(err)
		}

		var keys []string
		var retries []time.Time
		for _, a := range attempts() {
			keys = append(keys, a.key)
			if a.key == items[1].Key {
				retries = append(retries, a.at)
			}
		}
		want := []string{items[0].Key}
		for range failures + 1 {
			want = append(want, items[1].Key)
		}
		for _, it := range items[2:] {
			want = append(want, it.Key)
		}
		if !slices.Equal(keys, want) {
			t.Errorf("attempts = %q, want %q", keys, want)
		}
		// Delays double from MinBackoff up to MaxBackoff, with equal jitter.
		ceilings := []time.Duration{100, 200, 400, 400}
		for i := 1; i < len(retries); i++ {
			gap, ceil := retries[i].Sub(retries[i-1]), ceilings[i-1]*time.Millisecond
			if gap < ceil/2 || gap > ceil {
				t.Errorf("retry %d after %v, want within [%v, %v]", i, gap, ceil/2, ceil)
			}
		}
		if _, err := o.LastError(); err != nil {
			t.Errorf("LastError after success = %v, want nil", err)
		}
		for _, it := range items {
			if _, err := target.Stat(t.Context(), it.Key); err != nil {
				t.Errorf("%s lost: %v", it.Key, err)
			}
		}
	})
}

func TestWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		items, src := image("app", "v1")
		target := newFileStore(t)
		tag := items[len(items)-1]
		store, _ := flakyStore(target, tag.Key, -1)
		o, err := outbox.New(outbox.Config{
			DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: store, Source: src,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Wait(t.Context(), outbox.Ticket{}); err != nil {
			t.Errorf("Wait(zero Ticket) = %v", err)
		}
		blobs, err := o.Enqueue(t.Context(), items[:len(items)-1]...)
		if err != nil {
			t.Fatal(err)
		}
		all, err := o.Enqueue(t.Context(), tag)
		if err != nil {
			t.Fatal(err)
		}

		// Nothing is replicated before Run.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := o.Wait(ctx, blobs); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait without Run = %v, want DeadlineExceeded", err)
		}

		start(t, o)
		if err := o.Wait(t.Context(), blobs); err != nil {
			t.Errorf("Wait(blobs) = %v", err)
		}
		// The tag keeps failing: waiting for it times out, and it stays queued.
		ctx, cancel = context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := o.Wait(ctx, all); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait(all) = %v, want DeadlineExceeded", err)
		}
		if n := o.Pending(); n != 1 {
			t.Errorf("Pending = %d, want 1", n)
		}
	})
}

func TestDropsGoneBlobs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		items, src := image("app", "v1")
		gone := items[0]
		delete(src, gone.Blob)
		target := newFileStore(t)
		var rec recorder
		o, err := outbox.New(outbox.Config{
			DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: target, Source: src, OnDone: rec.done,
		})
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := o.Enqueue(t.Context(), items...)
		if err != nil {
			t.Fatal(err)
		}
		start(t, o)
		if err := o.Wait(t.Context(), ticket); err != nil {
			t.Fatal(err)
		}
		if _, err := target.Stat(t.Context(), gone.Key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("gone blob: Stat = %v, want ErrNotFound", err)
		}
		var want []string
		for _, it := range items[1:] {
			want = append(want, it.Key)
		}
		if got := rec.keys(); !slices.Equal(got, want) {
			t.Errorf("OnDone saw %q, want %q", got, want)
		}
	})
}

func TestDeleteItem(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		target := newFileStore(t)
		key := objstore.TagKey("app", "old")
		if err := target.Put(t.Context(), key, strings.NewReader(""), 0); err != nil {
			t.Fatal(err)
		}
		o, err := outbox.New(outbox.Config{
			DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: target, Source: blobSource{},
		})
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := o.Enqueue(t.Context(), outbox.Item{Key: key, Delete: true}, outbox.Item{Key: key, Delete: true})
		if err != nil {
			t.Fatal(err)
		}
		start(t, o)
		if err := o.Wait(t.Context(), ticket); err != nil {
			t.Fatal(err)
		}
		if _, err := target.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat after delete item = %v, want ErrNotFound", err)
		}
	})
}

func TestDropsUndecodableRecords(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
		target := newFileStore(t)
		o, err := outbox.New(outbox.Config{DB: db, Store: target, Source: blobSource{}})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("outbox"))
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			return b.Put([]byte{0, 0, 0, 0, 0, 0, 0, byte(seq)}, []byte("not json"))
		})
		if err != nil {
			t.Fatal(err)
		}
		ticket, err := o.Enqueue(t.Context(), outbox.Item{Key: "after", Data: []byte("ok")})
		if err != nil {
			t.Fatal(err)
		}
		start(t, o)
		if err := o.Wait(t.Context(), ticket); err != nil {
			t.Fatal(err)
		}
		if got := read(t, target, "after"); got != "ok" {
			t.Errorf("after = %q", got)
		}
	})
}

func TestRunOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		o, err := outbox.New(outbox.Config{
			DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: objstore.NewMemory(), Source: blobSource{},
		})
		if err != nil {
			t.Fatal(err)
		}
		start(t, o)
		synctest.Wait()
		if err := o.Run(t.Context()); !errors.Is(err, outbox.ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}
	})
}
