package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// flakySource serves a blob by ranges; each read stream breaks (the object
// store went away) after cut bytes, breaks times in all. It counts the
// bytes it served.
type flakySource struct {
	blob   []byte
	cut    int64
	mu     sync.Mutex
	breaks int
	served int64
	opens  int
	openEr error // returned by every open when set
}

func (s *flakySource) Stat(context.Context, digest.Digest) (int64, error) {
	return int64(len(s.blob)), nil
}

func (s *flakySource) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	return s.OpenRange(ctx, d, 0, int64(len(s.blob)))
}

func (s *flakySource) OpenRange(_ context.Context, _ digest.Digest, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if s.openEr != nil {
		return nil, s.openEr
	}
	r := io.Reader(bytes.NewReader(s.blob[off : off+n]))
	if s.breaks > 0 && n > s.cut {
		s.breaks--
		r = io.MultiReader(bytes.NewReader(s.blob[off:off+s.cut]), errReader{objstore.ErrUnavailable})
	}
	return io.NopCloser(&countingReader{r: r, s: s}), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type countingReader struct {
	r io.Reader
	s *flakySource
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.s.mu.Lock()
	c.s.served += int64(n)
	c.s.mu.Unlock()
	return n, err
}

func originReadCase(t *testing.T) (*fetcher, *cas.Store) {
	t.Helper()
	s, err := cas.Open(t.Context(), cas.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fetcher{cas: s, log: slog.New(slog.DiscardHandler), onBytes: func(string, int64) {}, originSplit: 64 << 10}
	return f, s
}

// TestOriginReadResumes: an origin read broken three times (the object
// store went away mid-stream) resumes where each attempt stopped: the blob
// is committed and the store served each byte once.
func TestOriginReadResumes(t *testing.T) {
	f, s := originReadCase(t)
	blob, d := randomBlob(5, 300<<10)
	src := &flakySource{blob: blob, cut: 20 << 10, breaks: 3}
	w, err := s.Create(t.Context(), d, int64(len(blob)), cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.fromOrigin(t.Context(), d, w, src); err != nil {
		t.Fatalf("origin read: %v", err)
	}
	if _, err := s.Stat(t.Context(), d); err != nil {
		t.Fatalf("not committed: %v", err)
	}
	if src.served != int64(len(blob)) {
		t.Fatalf("the store served %d bytes for a %d-byte blob: bytes read before a break were read again", src.served, len(blob))
	}
	if src.opens != 4+3 {
		t.Fatalf("%d reads opened, want 7 (4 ranges, 3 resumed)", src.opens)
	}
}

// TestOriginReadDoesNotRetryNotFound: a blob the store does not have
// fails at once (so does any read that got nothing yet).
func TestOriginReadDoesNotRetryNotFound(t *testing.T) {
	f, s := originReadCase(t)
	blob, d := randomBlob(6, 100<<10)
	src := &flakySource{blob: blob, openEr: objstore.ErrNotFound}
	w, err := s.Create(t.Context(), d, int64(len(blob)), cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(nil)
	err = f.fromOrigin(t.Context(), d, w, src)
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("origin read: %v, want objstore.ErrNotFound", err)
	}
	if src.opens != 1 {
		t.Fatalf("%d opens, want 1 (no retry)", src.opens)
	}
}

// TestOriginReadGivesUpWhenTheCacheFails: an error writing the cache (the
// write was aborted) is not retried.
func TestOriginReadGivesUpWhenTheCacheFails(t *testing.T) {
	f, s := originReadCase(t)
	blob, d := randomBlob(7, 100<<10)
	src := &flakySource{blob: blob}
	w, err := s.Create(t.Context(), d, int64(len(blob)), cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		t.Fatal(err)
	}
	w.Abort(errors.New("agent stopping"))
	if err := f.fromOrigin(t.Context(), d, w, src); err == nil {
		t.Fatal("origin read into an aborted write succeeded")
	}
	if src.opens != 1 {
		t.Fatalf("%d opens, want 1 (no retry)", src.opens)
	}
}
