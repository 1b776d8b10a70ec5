package cas_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// writeSlowly writes b in chunks, calling between(i) before chunk i.
func writeSlowly(w *cas.Writer, b []byte, chunk int, between func(i int)) error {
	for i, off := 0, 0; off < len(b); i, off = i+1, off+chunk {
		between(i)
		if _, err := w.Write(b[off:min(off+chunk, len(b))]); err != nil {
			return err
		}
	}
	return nil
}

func TestFollowersReadIdenticalBytes(t *testing.T) {
	t.Parallel()
	for _, known := range []bool{true, false} {
		name := "known size"
		if !known {
			name = "unknown size"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := openStore(t, nil)
			b, d := testBlob(1<<20, 9, digest.SHA256)
			size := int64(-1)
			if known {
				size = int64(len(b))
			}
			w, err := s.Create(t.Context(), d, size, cas.WriteOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			results := make(chan []byte, 3)
			follow := func() {
				f, err := s.Follow(t.Context(), d)
				if err != nil {
					t.Errorf("Follow: %v", err)
					results <- nil
					return
				}
				defer f.Close()
				got, err := io.ReadAll(f)
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				if err := f.Wait(t.Context()); err != nil {
					t.Errorf("Wait: %v", err)
				}
				results <- got
			}
			go follow() // before the first byte
			const chunks = 64
			var wg sync.WaitGroup
			err = writeSlowly(w, b, len(b)/chunks, func(i int) {
				if i == chunks/2 {
					wg.Go(follow) // mid-way
				}
			})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if _, err := w.Commit(t.Context()); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			wg.Wait()
			follow() // after commit
			for range 3 {
				assertBytes(t, "followed blob", <-results, b)
			}
		})
	}
}

func TestFollowerNeverEOFBeforeCommit(t *testing.T) {
	t.Parallel()
	b, d := testBlob(64<<10, 10, digest.SHA256)
	cause := errors.New("peer went away")
	tests := []struct {
		name string
		size int64
		end  func(*cas.Writer) error // ends the write with a failure
		want error
	}{
		{"abort", int64(len(b)), func(w *cas.Writer) error { w.Abort(cause); return nil }, cause},
		{"abort unknown size", -1, func(w *cas.Writer) error { w.Abort(cause); return nil }, cause},
		{"digest mismatch", int64(len(b)), func(w *cas.Writer) error {
			if _, err := w.Write(make([]byte, len(b)/2)); err != nil {
				return err
			}
			_, err := w.Commit(context.Background())
			return err
		}, cas.ErrDigestMismatch},
		{"short", -1, func(w *cas.Writer) error {
			_, err := w.Commit(context.Background())
			return err
		}, cas.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, cfg := openStore(t, nil)
			w, err := s.Create(t.Context(), d, tt.size, cas.WriteOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := w.Write(b[:len(b)/2]); err != nil {
				t.Fatalf("Write: %v", err)
			}
			f, err := s.Follow(t.Context(), d)
			if err != nil {
				t.Fatalf("Follow: %v", err)
			}
			defer f.Close()
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := f.Read(buf)
					if errors.Is(err, io.EOF) {
						done <- errors.New("io.EOF from a failed write")
						return
					}
					if err != nil {
						if !errors.Is(err, tt.want) {
							done <- err
							return
						}
						done <- nil
						return
					}
					if n == 0 {
						done <- errors.New("Read returned 0, nil")
						return
					}
				}
			}()
			if err := tt.end(w); err != nil && !errors.Is(err, tt.want) {
				t.Fatalf("ending the write: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("reader: %v", err)
			}
			// Every later read fails too, even of bytes that were written.
			if _, err := f.ReadAt(make([]byte, 10), 0); !errors.Is(err, tt.want) {
				t.Errorf("ReadAt after failure: err = %v, want %v", err, tt.want)
			}
			if err := f.Wait(t.Context()); !errors.Is(err, tt.want) {
				t.Errorf("Wait: err = %v, want %v", err, tt.want)
			}
			if _, err := s.Follow(t.Context(), d); err == nil {
				t.Error("Follow after the failure succeeded")
			}
			assertAbsent(t, s, cfg.Dir, d)
		})
	}
}

func TestManyFollowersParallelRanges(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(2<<20, 11, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	const followers = 24
	var wg sync.WaitGroup
	for i := range followers {
		f, err := s.Follow(t.Context(), d)
		if err != nil {
			t.Fatalf("Follow: %v", err)
		}
		wg.Go(func() {
			defer f.Close()
			if i%2 == 0 { // sequential readers
				got, err := io.ReadAll(f)
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				assertBytes(t, "sequential follower", got, b)
				return
			}
			// range readers, as HTTP Range requests are served
			r := rand.New(rand.NewPCG(uint64(i), 0))
			for range 20 {
				off := r.IntN(len(b))
				buf := make([]byte, min(r.IntN(64<<10)+1, len(b)-off))
				if _, err := f.ReadAt(buf, int64(off)); err != nil {
					t.Errorf("ReadAt(%d, %d): %v", len(buf), off, err)
					return
				}
				assertBytes(t, "range", buf, b[off:off+len(buf)])
			}
		})
	}
	// Eight writers fill 128 KiB ranges in random order, as a range
	// scheduler does.
	const rangeSize = 128 << 10
	ranges := rand.New(rand.NewPCG(1, 2)).Perm(len(b) / rangeSize)
	work := make(chan int)
	var writers sync.WaitGroup
	for range 8 {
		writers.Go(func() {
			for r := range work {
				off := r * rangeSize
				if _, err := w.WriteAt(b[off:off+rangeSize], int64(off)); err != nil {
					t.Errorf("WriteAt: %v", err)
				}
			}
		})
	}
	for _, r := range ranges {
		work <- r
	}
	close(work)
	writers.Wait()
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wg.Wait()
	assertBytes(t, "committed", readBlob(t, s, d), b)
}

func TestWriteAtOutOfOrder(t *testing.T) {
	t.Parallel()
	b, d := testBlob(1<<20, 12, digest.SHA512)
	type piece struct{ off, end int }
	tests := []struct {
		name   string
		pieces []piece
	}{
		{"reverse", []piece{{768 << 10, 1 << 20}, {512 << 10, 768 << 10}, {256 << 10, 512 << 10}, {0, 256 << 10}}},
		{"middle first", []piece{{300000, 700000}, {700000, 1 << 20}, {0, 300000}}},
		{"overlapping", []piece{{100, 600000}, {0, 200}, {500000, 1 << 20}, {0, 1 << 20}}},
		{"single bytes at the end", []piece{{1<<20 - 1, 1 << 20}, {0, 1<<20 - 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := openStore(t, nil)
			w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			for _, p := range tt.pieces {
				n, err := w.WriteAt(b[p.off:p.end], int64(p.off))
				if err != nil || n != p.end-p.off {
					t.Fatalf("WriteAt(%d, %d) = %d, %v", p.off, p.end, n, err)
				}
			}
			if _, err := w.Commit(t.Context()); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			assertBytes(t, "committed", readBlob(t, s, d), b)
		})
	}
}

func TestOverlappingWriteKeepsFirstBytes(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(1000, 13, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.WriteAt(b[:600], 0); err != nil {
		t.Fatal(err)
	}
	// Different bytes over a written range are not written: the file
	// always holds exactly the bytes that were hashed.
	if _, err := w.WriteAt(make([]byte, 1000), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(t.Context()); !errors.Is(err, cas.ErrDigestMismatch) {
		t.Fatalf("Commit: err = %v, want ErrDigestMismatch", err)
	}
	assertAbsent(t, s, cfg.Dir, d)
}

func TestMissingRangeFailsCommit(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(1000, 14, digest.SHA256)
	for _, size := range []int64{int64(len(b)), -1} {
		w, err := s.Create(t.Context(), d, size, cas.WriteOptions{})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := w.WriteAt(b[:400], 0); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(b[500:], 500); err != nil {
			t.Fatal(err)
		}
		if got := w.Written(); got != 400 {
			t.Errorf("Written() = %d, want 400", got)
		}
		if _, err := w.Commit(t.Context()); !errors.Is(err, cas.ErrSizeMismatch) {
			t.Fatalf("Commit(size %d): err = %v, want ErrSizeMismatch", size, err)
		}
		assertAbsent(t, s, cfg.Dir, d)
	}
}

func TestFollowContextEndsBlockedRead(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(100, 15, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w.Abort(nil)
	ctx, cancel := context.WithCancel(t.Context())
	f, err := s.Follow(ctx, d)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	defer f.Close()
	if _, err := w.Write(b[:10]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, err := f.Read(buf); n != 10 || err != nil {
		t.Fatalf("Read = %d, %v, want the 10 bytes written", n, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := f.Read(buf)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("blocked Read: err = %v, want context.Canceled", err)
	}
	waitCtx, waitCancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer waitCancel()
	if err := f.Wait(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait: err = %v, want DeadlineExceeded", err)
	}
}

func TestFollowerSeekAndSize(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(1000, 16, digest.SHA256)
	w, err := s.Create(t.Context(), d, -1, cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	f, err := s.Follow(t.Context(), d)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	defer f.Close()
	if f.Size() != -1 {
		t.Errorf("Size() = %d before commit of unknown size, want -1", f.Size())
	}
	if _, err := f.Seek(0, io.SeekEnd); err == nil {
		t.Error("Seek from the end of an unknown size succeeded")
	}
	put := func() {
		if _, err := w.Write(b); err != nil {
			t.Error(err)
		}
		if _, err := w.Commit(context.Background()); err != nil {
			t.Error(err)
		}
	}
	put()
	if f.Size() != 1000 {
		t.Errorf("Size() = %d after commit, want 1000", f.Size())
	}
	if off, err := f.Seek(-100, io.SeekEnd); off != 900 || err != nil {
		t.Fatalf("Seek(-100, end) = %d, %v", off, err)
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	assertBytes(t, "tail", got, b[900:])
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek to a negative offset succeeded")
	}
	buf := make([]byte, 200)
	if n, err := f.ReadAt(buf, 900); n != 100 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt past the end = %d, %v, want 100, io.EOF", n, err)
	}
	// A committed blob is followed straight from its file.
	g, err := s.Follow(t.Context(), d)
	if err != nil {
		t.Fatalf("Follow committed: %v", err)
	}
	defer g.Close()
	if g.Size() != 1000 {
		t.Errorf("Size() = %d, want 1000", g.Size())
	}
	if err := g.Wait(t.Context()); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := g.Read(buf); err == nil {
		t.Error("Read after Close succeeded")
	}
}

func TestRandomOverlappingWrites(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			s, _ := openStore(t, nil)
			b, d := testBlob(512<<10, 500+seed, digest.SHA256)
			w, f := createFollowed(t, s, d, int64(len(b)))
			defer f.Close()
			got := make(chan []byte, 1)
			go func() {
				all, err := io.ReadAll(f)
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				got <- all
			}()
			// Random ranges, overlapping each other, from six goroutines;
			// then one pass that fills whatever is left.
			var wg sync.WaitGroup
			for k := range 6 {
				r := rand.New(rand.NewPCG(seed, uint64(k)))
				wg.Go(func() {
					for range 30 {
						off := r.IntN(len(b))
						end := min(len(b), off+r.IntN(64<<10)+1)
						if n, err := w.WriteAt(b[off:end], int64(off)); err != nil || n != end-off {
							t.Errorf("WriteAt(%d, %d) = %d, %v", off, end, n, err)
						}
					}
				})
			}
			wg.Wait()
			if _, err := w.WriteAt(b, 0); err != nil {
				t.Fatalf("final WriteAt: %v", err)
			}
			if _, err := w.Commit(t.Context()); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			assertBytes(t, "follower", <-got, b)
			assertBytes(t, "committed", readBlob(t, s, d), b)
		})
	}
}

// TestFollowerVerified: Verified waits for the commit's digest check, not
// for the bytes alone, and fails when the bytes do not match, so a reader
// never ends a response on unverified bytes.
func TestFollowerVerified(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(4096, 16, digest.SHA256)
	for _, corrupt := range []bool{true, false} { // a failed write leaves nothing behind
		w, f := createFollowed(t, s, d, int64(len(b)))
		data := b
		if corrupt {
			data = append([]byte(nil), b...)
			data[100] ^= 1
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		// Every byte is there, but nothing has checked them yet.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		if err := f.Verified(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("corrupt=%v: Verified before Commit: err = %v, want DeadlineExceeded", corrupt, err)
		}
		cancel()
		_, cerr := w.Commit(t.Context())
		err := f.Verified(t.Context())
		switch {
		case corrupt && !errors.Is(err, cas.ErrDigestMismatch):
			t.Errorf("corrupt bytes: Verified = %v (commit %v), want ErrDigestMismatch", err, cerr)
		case !corrupt && (err != nil || cerr != nil):
			t.Errorf("good bytes: Verified = %v, commit %v, want both nil", err, cerr)
		}
		f.Close()
	}
}

// createFollowed starts writing d and returns the writer and a follower of it.
func createFollowed(t *testing.T, s *cas.Store, d digest.Digest, size int64) (*cas.Writer, *cas.Follower) {
	t.Helper()
	w, err := s.Create(t.Context(), d, size, cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	f, err := s.Follow(t.Context(), d)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	return w, f
}
