package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// refollowCase is a cache and a blob, and a follow function that works as
// the fetcher's does: it follows the blob's write, and starts one (here
// writing the right bytes) when there is none.
type refollowCase struct {
	s     *cas.Store
	data  []byte
	d     digest.Digest
	calls int
}

func newRefollowCase(t *testing.T) *refollowCase {
	t.Helper()
	s, err := cas.Open(t.Context(), cas.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := bytes.Repeat([]byte("refollow "), 4096)
	return &refollowCase{s: s, data: data, d: digest.FromBytes(data)}
}

func (c *refollowCase) create(t *testing.T) *cas.Writer {
	t.Helper()
	w, err := c.s.Create(t.Context(), c.d, int64(len(c.data)), cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (c *refollowCase) follow(ctx context.Context) (*cas.Follower, error) {
	c.calls++
	fl, err := c.s.Follow(ctx, c.d)
	if !errors.Is(err, cas.ErrNotFound) {
		return fl, err
	}
	w, err := c.s.Create(ctx, c.d, int64(len(c.data)), cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		return nil, err
	}
	fl, err = c.s.Follow(ctx, c.d)
	go func() {
		if _, err := w.Write(c.data); err != nil {
			w.Abort(err)
			return
		}
		w.Commit(context.Background())
	}()
	return fl, err
}

// start creates the blob's first write and a refollower of it, closed at
// the end of the test.
func (c *refollowCase) start(t *testing.T) (*cas.Writer, *refollower) {
	t.Helper()
	w := c.create(t)
	r, err := newRefollower(t.Context(), c.d, c.follow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r
}

// readAllVerified reads r to its end and waits for its verification.
func readAllVerified(ctx context.Context, r *refollower) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return b, err
	}
	return b, r.Verified(ctx)
}

// TestRefollowerFollowsTheNextWrite: a response that has not delivered a
// byte survives the failure of the write it follows (the swarm ran dry)
// and serves the blob from the write that replaces it (the origin read).
func TestRefollowerFollowsTheNextWrite(t *testing.T) {
	c := newRefollowCase(t)
	w1, r := c.start(t)
	w1.Abort(errors.New("no provider could serve"))
	b, err := readAllVerified(t.Context(), r)
	if err != nil {
		t.Fatalf("read after the first write failed: %v", err)
	}
	if !bytes.Equal(b, c.data) {
		t.Fatalf("read %d bytes, want the blob's %d", len(b), len(c.data))
	}
	if c.calls != 2 {
		t.Fatalf("followed %d times, want 2 (the failed write and its successor)", c.calls)
	}
}

// TestRefollowerKeepsARangeOffset: a ranged response (Seek before the
// first Read) continues from its offset on the new write.
func TestRefollowerKeepsARangeOffset(t *testing.T) {
	c := newRefollowCase(t)
	w1, r := c.start(t)
	const off = 1000
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	w1.Abort(nil)
	b, err := readAllVerified(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, c.data[off:]) {
		t.Fatalf("read %d bytes from offset %d, want %d", len(b), off, len(c.data)-off)
	}
}

// TestRefollowerNeverSplicesWrites: once a byte was delivered, the failure
// of the write fails the response: the rest would come from another write.
func TestRefollowerNeverSplicesWrites(t *testing.T) {
	c := newRefollowCase(t)
	w1 := c.create(t)
	if _, err := w1.Write(c.data[:100]); err != nil {
		t.Fatal(err)
	}
	r, err := newRefollower(t.Context(), c.d, c.follow)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 50)
	if n, err := r.Read(p); err != nil || n == 0 {
		t.Fatalf("first read: %d bytes, %v", n, err)
	}
	w1.Abort(errors.New("bad bytes"))
	_, err = io.ReadAll(r)
	if !errors.Is(err, cas.ErrWriteFailed) {
		t.Fatalf("read after a delivered byte and a failed write: %v, want cas.ErrWriteFailed", err)
	}
	if c.calls != 1 {
		t.Fatalf("followed %d times, want 1", c.calls)
	}
}

// TestRefollowerGivesUp: a blob whose every write fails ends the response
// with the failure after maxRefollows new writes.
func TestRefollowerGivesUp(t *testing.T) {
	c := newRefollowCase(t)
	calls := 0
	failing := func(ctx context.Context) (*cas.Follower, error) {
		calls++
		w := c.create(t)
		fl, err := c.s.Follow(ctx, c.d)
		w.Abort(errors.New("origin down"))
		return fl, err
	}
	r, err := newRefollower(t.Context(), c.d, failing)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, cas.ErrWriteFailed) {
		t.Fatalf("read: %v, want cas.ErrWriteFailed", err)
	}
	if calls != 1+maxRefollows {
		t.Fatalf("followed %d times, want %d", calls, 1+maxRefollows)
	}
}
