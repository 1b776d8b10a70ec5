package cas

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(sec int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Unix(int64(1_700_000_000+sec), 0)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newTestStore opens a store with a fake clock and closes it at cleanup.
func newTestStore(t *testing.T, cfg Config) (*Store, *clock) {
	t.Helper()
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	c := &clock{}
	c.set(0)
	s.now = c.now
	return s, c
}

// blobOf returns n bytes derived from i and their sha256 digest.
func blobOf(i, n int) ([]byte, digest.Digest) {
	b := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a}, n/3+1)[:n]
	return b, digest.FromBytes(b)
}

func commitBlob(t *testing.T, s *Store, b []byte, d digest.Digest, st State) {
	t.Helper()
	w, err := s.Create(t.Context(), d, int64(len(b)), WriteOptions{State: st})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func TestSpans(t *testing.T) {
	t.Parallel()
	type op struct {
		remove bool
		a, b   int64
	}
	tests := []struct {
		name   string
		ops    []op
		want   spans
		prefix int64
	}{
		{"empty", nil, nil, 0},
		{"one", []op{{false, 0, 10}}, spans{{0, 10}}, 10},
		{"adjacent merge", []op{{false, 10, 20}, {false, 0, 10}}, spans{{0, 20}}, 20},
		{"gap", []op{{false, 0, 5}, {false, 10, 20}}, spans{{0, 5}, {10, 20}}, 5},
		{"bridge", []op{{false, 0, 5}, {false, 10, 20}, {false, 30, 40}, {false, 3, 32}}, spans{{0, 40}}, 40},
		{"inside", []op{{false, 0, 50}, {false, 10, 20}}, spans{{0, 50}}, 50},
		{"empty range", []op{{false, 5, 5}}, nil, 0},
		{"not at zero", []op{{false, 1, 5}}, spans{{1, 5}}, 0},
		{"remove middle", []op{{false, 0, 50}, {true, 10, 20}}, spans{{0, 10}, {20, 50}}, 10},
		{"remove across", []op{{false, 0, 10}, {false, 20, 30}, {true, 5, 25}}, spans{{0, 5}, {25, 30}}, 5},
		{"remove all", []op{{false, 0, 10}, {true, 0, 10}}, spans{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s spans
			for _, o := range tt.ops {
				if o.remove {
					s = s.remove(o.a, o.b)
				} else {
					s = s.add(o.a, o.b)
				}
			}
			if len(s) != len(tt.want) || (len(s) > 0 && !slices.Equal(s, tt.want)) {
				t.Errorf("spans = %v, want %v", s, tt.want)
			}
			if p := s.prefix(); p != tt.prefix {
				t.Errorf("prefix() = %d, want %d", p, tt.prefix)
			}
		})
	}
	s := spans{{0, 5}, {10, 20}, {30, 40}}
	missingTests := []struct {
		a, b int64
		want []span
	}{
		{0, 5, nil},
		{0, 50, []span{{5, 10}, {20, 30}, {40, 50}}},
		{3, 12, []span{{5, 10}}},
		{20, 30, []span{{20, 30}}},
		{45, 50, []span{{45, 50}}},
	}
	for _, tt := range missingTests {
		if got := s.missing(tt.a, tt.b); !slices.Equal(got, tt.want) {
			t.Errorf("missing(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestEvictionOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var removed []digest.Digest
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes, cfg.HighWatermark, cfg.LowWatermark = 1000, 0.8, 0.5
	cfg.OnChange = func(ev Event) {
		if ev.Kind == Removed {
			if !ev.Evicted || ev.Size != 100 {
				t.Errorf("event %+v, want an eviction of 100 bytes", ev)
			}
			mu.Lock()
			removed = append(removed, ev.Digest)
			mu.Unlock()
		}
	}
	s, clk := newTestStore(t, cfg)
	ds := make([]digest.Digest, 10)
	for i := range ds {
		clk.set(i)
		var b []byte
		b, ds[i] = blobOf(i, 100)
		st := StateReplicated
		if i == 1 {
			st = StateLocal
		}
		commitBlob(t, s, b, ds[i], st)
	}
	if err := s.Pin(t.Context(), ds[2]); err != nil {
		t.Fatal(err)
	}
	clk.set(20)
	f, _, err := s.Open(t.Context(), ds[0]) // the oldest becomes the newest
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if info, _ := s.Stat(t.Context(), ds[0]); info.LastAccess.Unix() != 1_700_000_020 {
		t.Errorf("Stat after Open: LastAccess %v, want the pending access time", info.LastAccess)
	}

	res, err := s.Evict(t.Context())
	if err != nil {
		t.Fatalf("Evict: %v", err)
	}
	if res != (EvictResult{Blobs: 5, Bytes: 500}) {
		t.Errorf("Evict() = %+v, want 5 blobs, 500 bytes", res)
	}
	if want := ds[3:8]; !slices.Equal(removed, want) {
		t.Errorf("evicted %v, want %v (least recently used, replicated, unpinned)", removed, want)
	}
	for _, i := range []int{0, 1, 2, 8, 9} {
		if _, err := s.Stat(t.Context(), ds[i]); err != nil {
			t.Errorf("blob %d: %v", i, err)
		}
	}
	for _, i := range []int{3, 7} {
		if _, err := os.Stat(s.blobPath(ds[i])); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("evicted blob %d file: %v", i, err)
		}
	}
	if u := s.Usage(); u.Bytes != 500 || u.Blobs != 5 {
		t.Errorf("Usage() = %+v", u)
	}
	// Under the high watermark: nothing to do.
	if res, err := s.Evict(t.Context()); err != nil || res.Blobs != 0 {
		t.Errorf("second Evict() = %+v, %v", res, err)
	}
}

func TestEvictionStopsWhenNothingEvictable(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes, cfg.HighWatermark, cfg.LowWatermark = 1000, 0.5, 0.2
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, clk := newTestStore(t, cfg)
	var ds []digest.Digest
	for i := range 8 {
		clk.set(i)
		b, d := blobOf(i, 100)
		st := StateLocal
		if i < 2 {
			st = StateReplicated // evictable, 200 bytes
		}
		commitBlob(t, s, b, d, st)
		ds = append(ds, d)
	}
	if err := s.Pin(t.Context(), ds[1]); err != nil {
		t.Fatal(err)
	}
	res, err := s.Evict(t.Context())
	if err != nil {
		t.Fatalf("Evict: %v", err)
	}
	if res != (EvictResult{Blobs: 1, Bytes: 100}) {
		t.Errorf("Evict() = %+v, want only the replicated unpinned blob", res)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("nothing left to evict")) {
		t.Errorf("no warning logged; logs:\n%s", logs.String())
	}
	if u := s.Usage(); u.Blobs != 7 {
		t.Errorf("Usage() = %+v, want 7 blobs kept", u)
	}
}

func TestEvictionSkipsLiveWriter(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes, cfg.HighWatermark, cfg.LowWatermark = 100, 0.5, 0.1
	s, _ := newTestStore(t, cfg)
	b, d := blobOf(1, 100)
	commitBlob(t, s, b, d, StateReplicated)
	// A writer registered under a committed digest (as during an upload
	// race) protects it.
	w := &Writer{s: s, d: d}
	s.mu.Lock()
	s.writers[d] = w
	s.mu.Unlock()
	if res, err := s.Evict(t.Context()); err != nil || res.Blobs != 0 {
		t.Errorf("Evict() = %+v, %v, want nothing evicted", res, err)
	}
	s.mu.Lock()
	delete(s.writers, d)
	s.mu.Unlock()
	if res, err := s.Evict(t.Context()); err != nil || res.Blobs != 1 {
		t.Errorf("Evict() = %+v, %v, want the blob evicted", res, err)
	}
}

func TestRunEvictsAfterCommit(t *testing.T) {
	t.Parallel()
	evicted := make(chan digest.Digest, 10)
	cfg := DefaultConfig(t.TempDir())
	cfg.MaxBytes, cfg.HighWatermark, cfg.LowWatermark = 1000, 0.5, 0.3
	cfg.OnChange = func(ev Event) {
		if ev.Evicted {
			evicted <- ev.Digest
		}
	}
	s, clk := newTestStore(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error)
	go func() { ran <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var ds []digest.Digest
	for i := range 6 { // 600 bytes: over the high watermark at the sixth
		clk.set(i)
		b, d := blobOf(i, 100)
		commitBlob(t, s, b, d, StateReplicated)
		ds = append(ds, d)
	}
	timeout := time.After(10 * time.Second)
	for i := range 3 { // down to 300 bytes
		select {
		case d := <-evicted:
			if d != ds[i] {
				t.Errorf("eviction %d: %s, want %s", i, d, ds[i])
			}
		case <-timeout:
			t.Fatal("Run did not evict")
		}
	}
}

func TestAccessTimesAreBatched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(t.Context(), DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	clk.set(0)
	s.now = clk.now
	b, d := blobOf(1, 10)
	commitBlob(t, s, b, d, StateReplicated)
	indexed := func() int64 {
		var e entry
		err := s.db.View(func(tx *bolt.Tx) (err error) {
			e, _, err = getEntry(tx.Bucket(bucketBlobs), d)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return time.Unix(0, e.atime).Unix()
	}
	clk.set(5)
	f, err := s.Follow(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := indexed(); got != 1_700_000_000 {
		t.Errorf("index atime %d right after a read, want the commit time (batched)", got)
	}
	if err := s.flushAccess(); err != nil {
		t.Fatal(err)
	}
	if got := indexed(); got != 1_700_000_005 {
		t.Errorf("index atime %d after flush, want the read time", got)
	}
	clk.set(9)
	f2, _, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
	if err := s.Close(); err != nil { // Close flushes
		t.Fatal(err)
	}
	s, err = Open(t.Context(), DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if info, err := s.Stat(t.Context(), d); err != nil || info.LastAccess.Unix() != 1_700_000_009 {
		t.Errorf("Stat after reopen = %+v, %v, want the access flushed at Close", info, err)
	}
}

func TestReconcileAtOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := DefaultConfig(dir)
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kept, dKept := blobOf(1, 1000)
	lost, dLost := blobOf(2, 2000)
	trunc, dTrunc := blobOf(3, 3000)
	commitBlob(t, s, kept, dKept, StateReplicated)
	commitBlob(t, s, lost, dLost, StateReplicated)
	commitBlob(t, s, trunc, dTrunc, StateReplicated)
	if err := s.Pin(t.Context(), dKept); err != nil {
		t.Fatal(err)
	}
	garbled, dGarbled := blobOf(5, 500)
	commitBlob(t, s, garbled, dGarbled, StateReplicated)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).Put([]byte(dGarbled), []byte{99, 1, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	orphan, dOrphan := blobOf(4, 4000)
	orphanPath := s.blobPath(dOrphan)
	lostPath, truncPath := s.blobPath(dLost), s.blobPath(dTrunc)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Entry without file; file without entry; file of the wrong size; stray file.
	if err := os.Remove(lostPath); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(orphanPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphanPath, orphan, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(truncPath, 100); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "blobs", "sha256", "zz", "not-a-digest")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	s, err = Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	tests := []struct {
		name string
		d    digest.Digest
		want *Info // nil: gone
	}{
		{"kept", dKept, &Info{Size: 1000, State: StateReplicated, Pinned: true}},
		{"file lost", dLost, nil},
		{"truncated", dTrunc, nil},
		{"orphan file", dOrphan, &Info{Size: 4000, State: StateLocal}},
		{"unreadable entry", dGarbled, &Info{Size: 500, State: StateLocal}},
	}
	for _, tt := range tests {
		info, err := s.Stat(t.Context(), tt.d)
		switch {
		case tt.want == nil && !errors.Is(err, ErrNotFound):
			t.Errorf("%s: Stat err = %v, want ErrNotFound", tt.name, err)
		case tt.want != nil && (err != nil || info.Size != tt.want.Size || info.State != tt.want.State || info.Pinned != tt.want.Pinned):
			t.Errorf("%s: Stat = %+v, %v, want %+v", tt.name, info, err, *tt.want)
		}
	}
	if _, err := os.Stat(truncPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("truncated blob file still there: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("stray file was touched: %v", err)
	}
	if u := s.Usage(); u.Bytes != 5500 || u.Blobs != 3 {
		t.Errorf("Usage() = %+v, want 5500 bytes in 3 blobs", u)
	}
}

func TestFollowersShareTheWritersDescriptor(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, DefaultConfig(t.TempDir()))
	b, d := blobOf(1, 1000)
	w, err := s.Create(t.Context(), d, int64(len(b)), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b[:500]); err != nil {
		t.Fatal(err)
	}
	var fs []*Follower
	for range 100 {
		f, err := s.Follow(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if f.f != w.f {
			t.Fatal("follower opened its own descriptor")
		}
		fs = append(fs, f)
	}
	refs := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.fileRefs
	}
	if got := refs(); got != 101 {
		t.Errorf("fileRefs = %d, want 101", got)
	}
	if err := fs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs[0].ReadAt(make([]byte, 10), 0); !errors.Is(err, errFollowerClosed) {
		t.Errorf("ReadAt after Close: err = %v, want errFollowerClosed", err)
	}
	if _, err := fs[1].ReadAt(make([]byte, 10), 0); err != nil {
		t.Errorf("ReadAt on another follower: %v", err)
	}
	if _, err := w.Write(b[500:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(b))
	if _, err := fs[1].ReadAt(got, 0); err != nil || !bytes.Equal(got, b) {
		t.Errorf("ReadAt after commit: %v", err)
	}
	for _, f := range fs[1:] {
		f.Close()
	}
	if got := refs(); got != 0 {
		t.Errorf("fileRefs = %d after everyone let go, want 0", got)
	}
	if _, err := w.f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("writer's file still open: %v", err)
	}
}

// TestFollowAfterAFailedWrite: a failed write wakes its followers before it
// leaves the writers' map. A follower that follows the blob again in that
// window finds it not there (ErrNotFound: the digest is free for the next
// write), not the failed write (agent's refollower, TestPullOutlivesAFailedSwarm).
func TestFollowAfterAFailedWrite(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, DefaultConfig(t.TempDir()))
	b, d := blobOf(2, 1000)
	w, err := s.Create(t.Context(), d, int64(len(b)), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The window: failed, still in the map.
	w.mu.Lock()
	w.state, w.err = stateFailed, errAborted
	w.mu.Unlock()
	if _, err := s.Follow(t.Context(), d); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrWriteFailed) {
		t.Fatalf("Follow in the window = %v; want ErrNotFound", err)
	}
	s.mu.Lock()
	delete(s.writers, d)
	s.mu.Unlock()
	w.releaseFile()
}
