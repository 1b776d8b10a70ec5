package objstoretest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// largeSize is the size of the object testLarge streams through a store.
const largeSize = 64 << 20

// randomReader returns n pseudo-random bytes generated on the fly, so the
// test never holds the whole object.
func randomReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func testLarge(t *testing.T, s objstore.Store) {
	size := int64(largeSize)
	if testing.Short() {
		size = 8 << 20
	}
	h := sha256.New()
	if err := s.Put(t.Context(), "large", io.TeeReader(randomReader(1, size), h), size); err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := h.Sum(nil)
	rc, err := s.Get(t.Context(), "large", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	h.Reset()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("Get returned %d bytes (err %v), sha256 match %v; want %d bytes", n, err, bytes.Equal(h.Sum(nil), want), size)
	}
	// A range in the middle matches the same bytes of the source.
	const off, length = 40<<20 - 3, 1 << 20
	if off+length > size {
		return
	}
	src := randomReader(1, size)
	if _, err := io.CopyN(io.Discard, src, off); err != nil {
		t.Fatal(err)
	}
	wantRange, _ := io.ReadAll(io.LimitReader(src, length))
	if got := get(t, s, "large", off, length); got != string(wantRange) {
		t.Errorf("ranged Get of %d bytes at %d differs from the source", length, off)
	}
}

// slowReader hands out data in small pieces so a Put stays in progress
// while readers poll.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 4096)]) }

func testConcurrentPut(t *testing.T, s objstore.Store) {
	versions := [][]byte{bytes.Repeat([]byte{'A'}, 300<<10), bytes.Repeat([]byte{'B'}, 200<<10)}
	digests := []digest.Digest{digest.FromBytes(versions[0]), digest.FromBytes(versions[1])}
	put(t, s, "atomic", string(versions[0]))

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	wg.Go(func() {
		defer close(done)
		for i := range 20 {
			v := versions[i%2]
			if err := s.Put(t.Context(), "atomic", &slowReader{bytes.NewReader(v)}, int64(len(v))); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := readWhole(t, s, digests); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readWhole reads the object under "atomic" and checks it is one whole version.
func readWhole(t *testing.T, s objstore.Store, want []digest.Digest) error {
	info, err := s.Stat(t.Context(), "atomic")
	if err != nil {
		return err
	}
	if info.Size != 300<<10 && info.Size != 200<<10 {
		return errors.New("stat saw a partial object")
	}
	rc, err := s.Get(t.Context(), "atomic", 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	d, err := digest.FromReader(rc)
	if err != nil {
		return err
	}
	if d != want[0] && d != want[1] {
		return errors.New("get saw a partial or mixed object")
	}
	return nil
}
