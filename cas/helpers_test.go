package cas_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// testBlob returns n deterministic pseudo-random bytes and their digest.
func testBlob(n int, seed uint64, alg digest.Algorithm) ([]byte, digest.Digest) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b, alg.FromBytes(b)
}

// events records OnChange calls.
type events struct {
	mu  sync.Mutex
	evs []cas.Event
}

func (e *events) record(ev cas.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) list() []cas.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]cas.Event(nil), e.evs...)
}

// openStore opens a store in a fresh directory and closes it at cleanup.
func openStore(t testing.TB, modify func(*cas.Config)) (*cas.Store, cas.Config) {
	t.Helper()
	cfg := cas.DefaultConfig(t.TempDir())
	if modify != nil {
		modify(&cfg)
	}
	s, err := cas.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, cfg
}

// put writes and commits b under d.
func put(t testing.TB, s *cas.Store, d digest.Digest, b []byte, opts cas.WriteOptions) cas.Info {
	t.Helper()
	w, err := s.Create(context.Background(), d, int64(len(b)), opts)
	if err != nil {
		t.Fatalf("Create %s: %v", d, err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write %s: %v", d, err)
	}
	info, err := w.Commit(context.Background())
	if err != nil {
		t.Fatalf("Commit %s: %v", d, err)
	}
	return info
}

// readBlob returns the committed bytes of d.
func readBlob(t testing.TB, s *cas.Store, d digest.Digest) []byte {
	t.Helper()
	f, _, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	return b
}

// blobFile is where the layout puts d.
func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

// assertAbsent checks that nothing is stored under d and no temp file is left.
func assertAbsent(t *testing.T, s *cas.Store, dir string, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Stat %s: err = %v, want ErrNotFound", d, err)
	}
	if _, err := os.Stat(blobFile(dir, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("blob file of %s: err = %v, want not exist", d, err)
	}
	assertEmptyDir(t, filepath.Join(dir, "incomplete"))
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir %s: %v", dir, err)
	}
	for _, de := range des {
		t.Errorf("%s: leftover %s", dir, de.Name())
	}
}

func assertBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes, want %d (contents differ: %v)", what, len(got), len(want), len(got) == len(want))
	}
}
