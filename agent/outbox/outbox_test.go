package outbox_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas/objstore"
	"go.etcd.io/bbolt"
)

func TestReplicatesInOrder(t *testing.T) {
	t.Parallel()
	items, src := image("library/app", "v1")
	target := newFileStore(t)
	var mu sync.Mutex
	var puts []string
	store := &funcStore{Store: target, put: func(ctx context.Context, key string, r io.Reader, size int64) error {
		mu.Lock()
		puts = append(puts, key)
		mu.Unlock()
		return target.Put(ctx, key, r, size)
	}}
	var rec recorder
	o, err := outbox.New(outbox.Config{
		DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: store, Source: src, OnDone: rec.done,
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, o)
	if _, err := o.Enqueue(t.Context(), items[:2]...); err != nil {
		t.Fatal(err)
	}
	ticket, err := o.Enqueue(t.Context(), items[2:]...)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Wait(t.Context(), ticket); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var want []string
	for _, it := range items {
		want = append(want, it.Key)
		got := read(t, target, it.Key)
		if it.Blob != "" && got != string(src[it.Blob]) || it.Blob == "" && got != string(it.Data) {
			t.Errorf("%s = %q", it.Key, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(puts, want) {
		t.Errorf("store saw puts %q, want %q", puts, want)
	}
	if got := rec.keys(); !slices.Equal(got, want) {
		t.Errorf("OnDone saw %q, want %q", got, want)
	}
	if n := o.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
	if _, err := o.LastError(); err != nil {
		t.Errorf("LastError = %v", err)
	}
}

func TestDurableAcrossRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	items, src := image("app", "latest")
	target := newFileStore(t)

	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := outbox.New(outbox.Config{DB: db, Store: target, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(t.Context(), items...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // the agent stops before replicating
		t.Fatal(err)
	}

	o, err = outbox.New(outbox.Config{DB: openDB(t, path), Store: target, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if n := o.Pending(); n != len(items) {
		t.Fatalf("after reopening, Pending = %d, want %d", n, len(items))
	}
	ticket, err := o.Enqueue(t.Context(), outbox.Item{Key: "marker", Data: []byte("after restart")})
	if err != nil {
		t.Fatal(err)
	}
	start(t, o)
	if err := o.Wait(t.Context(), ticket); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if _, err := target.Stat(t.Context(), it.Key); err != nil {
			t.Errorf("%s not replicated after restart: %v", it.Key, err)
		}
	}
}

func TestEnqueueTxAtomic(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	target := newFileStore(t)
	o, err := outbox.New(outbox.Config{DB: db, Store: target, Source: blobSource{}})
	if err != nil {
		t.Fatal(err)
	}
	item := outbox.Item{Key: objstore.TagKey("app", "v1"), Data: []byte("sha256:…")}
	meta := []byte("tags")

	errRollback := errors.New("rollback")
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(meta)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("app:v1"), []byte("x")); err != nil {
			return err
		}
		if _, err := o.EnqueueTx(tx, item); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update = %v", err)
	}
	if n := o.Pending(); n != 0 {
		t.Fatalf("after rollback, Pending = %d, want 0", n)
	}

	var ticket outbox.Ticket
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(meta)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("app:v1"), []byte("x")); err != nil {
			return err
		}
		ticket, err = o.EnqueueTx(tx, item)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Notify()
	if n := o.Pending(); n != 1 {
		t.Fatalf("after commit, Pending = %d, want 1", n)
	}
	start(t, o)
	if err := o.Wait(t.Context(), ticket); err != nil {
		t.Fatal(err)
	}
	if got := read(t, target, item.Key); got != string(item.Data) {
		t.Errorf("tag = %q", got)
	}
}

func TestEnqueueRejectsInvalidItems(t *testing.T) {
	t.Parallel()
	o, err := outbox.New(outbox.Config{
		DB: openDB(t, filepath.Join(t.TempDir(), "meta.db")), Store: objstore.NewMemory(), Source: blobSource{},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	tests := []struct {
		name string
		item outbox.Item
	}{
		{"empty key", outbox.Item{Data: []byte("x")}},
		{"traversal", outbox.Item{Key: "../etc/passwd"}},
		{"blob and data", outbox.Item{Key: "k", Blob: d, Data: []byte("x")}},
		{"delete with content", outbox.Item{Key: "k", Data: []byte("x"), Delete: true}},
		{"bad digest", outbox.Item{Key: "k", Blob: "sha256:nothex"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok := outbox.Item{Key: "fine"}
			if _, err := o.Enqueue(t.Context(), ok, tt.item); !errors.Is(err, outbox.ErrInvalidItem) {
				t.Errorf("Enqueue = %v, want ErrInvalidItem", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := o.Pending(); n != 0 {
			t.Errorf("Pending = %d after rejected enqueues", n)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	good := outbox.Config{DB: db, Store: objstore.NewMemory(), Source: blobSource{}}
	tests := []struct {
		name   string
		mutate func(*outbox.Config)
	}{
		{"no db", func(c *outbox.Config) { c.DB = nil }},
		{"no store", func(c *outbox.Config) { c.Store = nil }},
		{"no source", func(c *outbox.Config) { c.Source = nil }},
		{"min above max", func(c *outbox.Config) { c.MinBackoff, c.MaxBackoff = 2e9, 1e9 }},
		{"negative", func(c *outbox.Config) { c.MinBackoff = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tt.mutate(&cfg)
			if _, err := outbox.New(cfg); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	if _, err := outbox.New(good); err != nil {
		t.Errorf("New(good) = %v", err)
	}
}

func TestLatest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	target := newFileStore(t)
	o, err := outbox.New(outbox.Config{DB: db, Store: target, Source: blobSource{}})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := objstore.TagKey("app", "v1"), objstore.TagKey("app", "v2")
	data := []byte("one")
	_, err = o.Enqueue(t.Context(),
		outbox.Item{Key: v2, Data: []byte("two")},
		outbox.Item{Key: v1, Data: data},
		outbox.Item{Key: v1, Delete: true},
		outbox.Item{Key: "other", Data: []byte("x")},
	)
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // the queue keeps its own copy
	if it, ok := o.Latest(v1); !ok || !it.Delete {
		t.Errorf("Latest(v1) = %+v, %v; want the delete", it, ok)
	}
	var keys []string
	for _, it := range o.LatestUnder(objstore.TagsPrefix("app")) {
		keys = append(keys, it.Key)
	}
	if !slices.Equal(keys, []string{v1, v2}) {
		t.Errorf("LatestUnder = %q, want [%s %s]", keys, v1, v2)
	}

	// The index is rebuilt from the database.
	o2, err := outbox.New(outbox.Config{DB: db, Store: target, Source: blobSource{}})
	if err != nil {
		t.Fatal(err)
	}
	if it, ok := o2.Latest(v2); !ok || string(it.Data) != "two" {
		t.Errorf("after reload, Latest(v2) = %+v, %v", it, ok)
	}
	if ticket, err := o2.Enqueue(t.Context()); err != nil || ticket != (outbox.Ticket{}) {
		t.Errorf("Enqueue() = %v, %v; want the zero Ticket", ticket, err)
	}
	start(t, o2)
	done, err := o2.Enqueue(t.Context(), outbox.Item{Key: "last"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.Wait(t.Context(), done); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{v1, v2, "other", "last"} {
		if it, ok := o2.Latest(k); ok {
			t.Errorf("Latest(%s) = %+v after replication", k, it)
		}
	}
	if _, err := target.Stat(t.Context(), v1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("v1 after put then delete: %v", err)
	}
}
