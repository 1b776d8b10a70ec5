package cas_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// TestConcurrentOperationsThenReopen races writers, followers, uploads,
// deletes and eviction on a few digests, closes the store in the middle of
// it, and checks that every blob left on disk matches its digest and that
// no reader ever saw a wrong or truncated blob.
func TestConcurrentOperationsThenReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := cas.DefaultConfig(dir)
	cfg.MaxBytes, cfg.HighWatermark, cfg.LowWatermark = 64<<10, 0.5, 0.25
	s, err := cas.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	type blob struct {
		b []byte
		d digest.Digest
	}
	blobs := make([]blob, 6)
	for i := range blobs {
		blobs[i].b, blobs[i].d = testBlob(8<<10+i*1000, uint64(600+i), digest.SHA256)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var done, commits, follows atomic.Int64
	halfway := make(chan struct{})
	worker := func(seed uint64, ops int) {
		r := rand.New(rand.NewPCG(seed, 7))
		for range ops {
			if done.Add(1) == 120 {
				close(halfway)
			}
			bl := blobs[r.IntN(len(blobs))]
			switch r.IntN(5) {
			case 0, 1: // write, sometimes with a wrong byte, sometimes abandoned
				w, err := s.Create(ctx, bl.d, int64(len(bl.b)), cas.WriteOptions{})
				if err != nil {
					continue
				}
				data := bl.b
				if r.IntN(4) == 0 {
					data = append([]byte(nil), bl.b...)
					data[r.IntN(len(data))] ^= 1
				}
				half := len(data) / 2
				_, _ = w.WriteAt(data[half:], int64(half))
				_, _ = w.WriteAt(data[:half], 0)
				if r.IntN(5) == 0 {
					w.Abort(errors.New("gave up"))
					continue
				}
				if _, err := w.Commit(ctx); err == nil {
					commits.Add(1)
				}
			case 2: // follow and check what was read
				f, err := s.Follow(ctx, bl.d)
				if err != nil {
					continue
				}
				got, err := io.ReadAll(f)
				f.Close()
				if err == nil {
					follows.Add(1)
					if string(got) != string(bl.b) {
						t.Errorf("follower of %s read %d wrong bytes without an error", bl.d, len(got))
					}
				}
			case 3: // upload
				u, err := s.NewUpload(ctx)
				if err != nil {
					continue
				}
				if _, err := u.Append(ctx, bytesReader(bl.b)); err != nil {
					continue
				}
				_, _ = u.Commit(ctx, bl.d, cas.WriteOptions{})
			case 4:
				if r.IntN(2) == 0 {
					_ = s.Delete(ctx, bl.d)
				} else {
					_, _ = s.Evict(ctx)
				}
			}
		}
	}
	for k := range 6 {
		wg.Go(func() { worker(uint64(k), 30) })
	}
	wg.Go(func() {
		<-halfway
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	wg.Wait()
	if commits.Load() == 0 || follows.Load() == 0 {
		t.Errorf("%d commits and %d complete follows before Close: the test did not exercise the store", commits.Load(), follows.Load())
	}
	t.Logf("%d commits, %d complete follows", commits.Load(), follows.Load())

	s, err = cas.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var total int64
	err = s.Walk(t.Context(), func(info cas.Info) error {
		f, _, err := s.Open(t.Context(), info.Digest)
		if err != nil {
			return err
		}
		defer f.Close()
		got, err := digest.SHA256.FromReader(f)
		if err != nil {
			return err
		}
		if got != info.Digest {
			t.Errorf("blob %s holds %s", info.Digest, got)
		}
		total += info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if u := s.Usage(); u.Bytes != total {
		t.Errorf("Usage().Bytes = %d, want %d", u.Bytes, total)
	}
}
