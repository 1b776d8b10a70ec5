package outbox_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openDB opens a bbolt database at path, closed at cleanup.
func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newFileStore returns a file store in a temporary directory.
func newFileStore(t *testing.T) *filestore.Store {
	t.Helper()
	s, err := filestore.New(filepath.Join(t.TempDir(), "origin"))
	if err != nil {
		t.Fatalf("filestore: %v", err)
	}
	return s
}

// funcStore wraps a Store; a set function field replaces a method.
type funcStore struct {
	objstore.Store
	put func(ctx context.Context, key string, r io.Reader, size int64) error
}

func (f *funcStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.put != nil {
		return f.put(ctx, key, r, size)
	}
	return f.Store.Put(ctx, key, r, size)
}

// blobSource serves blobs from memory; missing ones are gone.
type blobSource map[digest.Digest][]byte

func (s blobSource) OpenBlob(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, ok := s[d]
	if !ok {
		return nil, 0, fmt.Errorf("blob %s: %w", d, outbox.ErrSourceGone)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// recorder records the items OnDone reports.
type recorder struct {
	mu    sync.Mutex
	items []outbox.Item
}

func (r *recorder) done(it outbox.Item) {
	r.mu.Lock()
	r.items = append(r.items, it)
	r.mu.Unlock()
}

func (r *recorder) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, len(r.items))
	for i, it := range r.items {
		keys[i] = it.Key
	}
	return keys
}

// start runs o until the test ends and checks Run returned nil.
func start(t *testing.T, o *outbox.Outbox) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// read returns the content under key in s.
func read(t *testing.T, s objstore.Store, key string) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

// image returns the items of a push (two layers, a manifest, its marker
// and a tag, in the order the registry enqueues them) and their source.
func image(repo, tag string) ([]outbox.Item, blobSource) {
	layer1, layer2 := []byte("layer one"), []byte("layer two")
	manifest := []byte(`{"layers":["one","two"]}`)
	src := blobSource{digest.FromBytes(layer1): layer1, digest.FromBytes(layer2): layer2}
	md := digest.FromBytes(manifest)
	return []outbox.Item{
		{Key: objstore.BlobKey(digest.FromBytes(layer1)), Blob: digest.FromBytes(layer1)},
		{Key: objstore.BlobKey(digest.FromBytes(layer2)), Blob: digest.FromBytes(layer2)},
		{Key: objstore.BlobKey(md), Data: manifest},
		{Key: objstore.ManifestKey(repo, md)},
		{Key: objstore.TagKey(repo, tag), Data: []byte(md.String())},
	}, src
}
