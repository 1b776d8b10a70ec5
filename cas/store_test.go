package cas_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*cas.Config)
		ok     bool
	}{
		{"defaults", func(*cas.Config) {}, true},
		{"max bytes", func(c *cas.Config) { c.MaxBytes = 1 << 30 }, true},
		{"high is one", func(c *cas.Config) { c.HighWatermark = 1 }, true},
		{"empty dir", func(c *cas.Config) { c.Dir = "" }, false},
		{"negative max", func(c *cas.Config) { c.MaxBytes = -1 }, false},
		{"low equals high", func(c *cas.Config) { c.LowWatermark = c.HighWatermark }, false},
		{"low above high", func(c *cas.Config) { c.LowWatermark, c.HighWatermark = 0.9, 0.5 }, false},
		{"zero low", func(c *cas.Config) { c.LowWatermark = 0 }, false},
		{"high above one", func(c *cas.Config) { c.HighWatermark = 1.1 }, false},
		{"negative high", func(c *cas.Config) { c.HighWatermark = -0.5 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := cas.DefaultConfig("/var/lib/shoal/cas")
			tt.modify(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestCommitVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		n         int
		alg       digest.Algorithm
		knownSize bool
		chunk     int
	}{
		{"sha256 known size", 300 << 10, digest.SHA256, true, 7 << 10},
		{"sha256 unknown size", 300 << 10, digest.SHA256, false, 64 << 10},
		{"sha512", 100 << 10, digest.SHA512, true, 1000},
		{"empty", 0, digest.SHA256, true, 1},
		{"one byte", 1, digest.SHA512, false, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var evs events
			s, _ := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
			b, d := testBlob(tt.n, uint64(i), tt.alg)
			size := int64(-1)
			if tt.knownSize {
				size = int64(tt.n)
			}
			w, err := s.Create(t.Context(), d, size, cas.WriteOptions{MediaType: "application/octet-stream"})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			for off := 0; off < len(b); off += tt.chunk {
				if _, err := w.Write(b[off:min(off+tt.chunk, len(b))]); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if got := w.Written(); got != int64(tt.n) {
				t.Errorf("Written() = %d, want %d", got, tt.n)
			}
			info, err := w.Commit(t.Context())
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			want := cas.Info{Digest: d, Size: int64(tt.n), MediaType: "application/octet-stream", State: cas.StateReplicated}
			info.LastAccess = want.LastAccess
			if info != want {
				t.Errorf("Commit() = %+v, want %+v", info, want)
			}
			if _, err := w.Commit(t.Context()); err != nil {
				t.Errorf("second Commit: %v", err)
			}
			w.Abort(errors.New("late abort")) // no-op after Commit
			st, err := s.Stat(t.Context(), d)
			if err != nil || st.Size != int64(tt.n) || st.State != cas.StateReplicated {
				t.Errorf("Stat() = %+v, %v", st, err)
			}
			assertBytes(t, "committed blob", readBlob(t, s, d), b)
			if _, err := w.Write([]byte("x")); err == nil {
				t.Error("Write after Commit succeeded")
			}
			if evs := evs.list(); len(evs) != 1 || evs[0] != (cas.Event{Kind: cas.Added, Digest: d, Size: int64(tt.n)}) {
				t.Errorf("events = %+v", evs)
			}
			if u := s.Usage(); u.Bytes != int64(tt.n) || u.Blobs != 1 {
				t.Errorf("Usage() = %+v", u)
			}
		})
	}
}

func TestCommitRejects(t *testing.T) {
	t.Parallel()
	b, d := testBlob(64<<10, 1, digest.SHA256)
	_, d512 := testBlob(64<<10, 1, digest.SHA512)
	other, _ := testBlob(64<<10, 2, digest.SHA256)
	tests := []struct {
		name     string
		d        digest.Digest
		size     int64
		data     []byte
		writeErr error // from Write, if it fails
		want     error
	}{
		{"wrong content", d, int64(len(b)), other, nil, cas.ErrDigestMismatch},
		{"wrong content unknown size", d, -1, other, nil, cas.ErrDigestMismatch},
		{"sha512 wrong content", d512, int64(len(b)), other, nil, cas.ErrDigestMismatch},
		{"short", d, int64(len(b)), b[:len(b)-1], nil, cas.ErrSizeMismatch},
		{"short unknown size", d, -1, b[:len(b)-1], nil, cas.ErrDigestMismatch},
		{"long", d, int64(len(b)) - 1, b, cas.ErrSizeMismatch, cas.ErrSizeMismatch},
		{"right bytes wrong size", d, int64(len(b)) + 1, b, nil, cas.ErrSizeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var evs events
			s, cfg := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
			w, err := s.Create(t.Context(), tt.d, tt.size, cas.WriteOptions{})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := w.Write(tt.data); !errors.Is(err, tt.writeErr) {
				t.Fatalf("Write: err = %v, want %v", err, tt.writeErr)
			}
			if _, err := w.Commit(t.Context()); !errors.Is(err, tt.want) {
				t.Fatalf("Commit: err = %v, want %v", err, tt.want)
			}
			assertAbsent(t, s, cfg.Dir, tt.d)
			if evs := evs.list(); len(evs) != 0 {
				t.Errorf("events = %+v, want none", evs)
			}
			if u := s.Usage(); u.Bytes != 0 || u.Blobs != 0 {
				t.Errorf("Usage() = %+v", u)
			}
			// The digest is free again: the right bytes commit.
			if tt.d == d {
				put(t, s, d, b, cas.WriteOptions{})
				assertBytes(t, "retried blob", readBlob(t, s, d), b)
			}
		})
	}
}

func TestInvalidDigests(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	for _, d := range []digest.Digest{
		"",
		"sha256:abc",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		digest.SHA384.FromString("x"),
		"sha256:../../../../etc/passwd",
	} {
		if _, err := s.Create(t.Context(), d, 1, cas.WriteOptions{}); err == nil {
			t.Errorf("Create(%q) succeeded", d)
		}
		if _, err := s.Stat(t.Context(), d); err == nil || errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want a validation error", d, err)
		}
	}
}

func TestCreateConflicts(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(1000, 3, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{}); !errors.Is(err, cas.ErrInProgress) {
		t.Errorf("second Create: err = %v, want ErrInProgress", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{}); !errors.Is(err, cas.ErrExists) {
		t.Errorf("Create after commit: err = %v, want ErrExists", err)
	}
	// An aborted writer frees the digest.
	_, d2 := testBlob(10, 4, digest.SHA256)
	w2, err := s.Create(t.Context(), d2, 10, cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	w2.Abort(nil)
	w3, err := s.Create(t.Context(), d2, 10, cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create after Abort: %v", err)
	}
	w3.Abort(nil)
}

func TestInterruptedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := cas.DefaultConfig(dir)
	s, err := cas.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b, d := testBlob(100<<10, 5, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(b[:50<<10]); err != nil {
		t.Fatalf("Write: %v", err)
	}
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	if _, err := u.Append(t.Context(), bytesReader(b)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	// The writer is abandoned; Close fails it.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := w.Write(b[50<<10:]); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := w.Commit(t.Context()); !errors.Is(err, cas.ErrClosed) {
		t.Errorf("Commit after Close: err = %v, want ErrClosed", err)
	}
	// A crash leaves temp files behind.
	for _, p := range []string{"incomplete/crashed-123", "uploads/0123456789abcdef"} {
		if err := os.WriteFile(filepath.Join(dir, p), b[:1000], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "incomplete", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	s, err = cas.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	assertAbsent(t, s, dir, d)
	assertEmptyDir(t, filepath.Join(dir, "uploads"))
	if _, err := s.ResumeUpload(t.Context(), u.ID()); !errors.Is(err, cas.ErrUploadUnknown) {
		t.Errorf("ResumeUpload after reopen: err = %v, want ErrUploadUnknown", err)
	}
	if u := s.Usage(); u.Bytes != 0 || u.Blobs != 0 {
		t.Errorf("Usage() = %+v", u)
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s, err := cas.Open(t.Context(), cas.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, d := testBlob(1, 1, digest.SHA256)
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, cas.ErrClosed) {
		t.Errorf("Stat: err = %v, want ErrClosed", err)
	}
	if _, err := s.Create(t.Context(), d, 1, cas.WriteOptions{}); !errors.Is(err, cas.ErrClosed) {
		t.Errorf("Create: err = %v, want ErrClosed", err)
	}
	if _, err := s.NewUpload(t.Context()); !errors.Is(err, cas.ErrClosed) {
		t.Errorf("NewUpload: err = %v, want ErrClosed", err)
	}
	if err := s.Run(t.Context()); err != nil {
		t.Errorf("Run on closed store: %v", err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(100, 18, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := cas.Open(t.Context(), cfg); err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
	// The failed Open left the first store's write alone.
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("Commit after a failed second Open: %v", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	var evs events
	s, cfg := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
	b, d := testBlob(4096, 6, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{State: cas.StateLocal})
	if err := s.Pin(t.Context(), d); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	if err := s.Delete(t.Context(), d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertAbsent(t, s, cfg.Dir, d)
	if err := s.Delete(t.Context(), d); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(t.Context(), d); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Open: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Follow(t.Context(), d); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Follow: err = %v, want ErrNotFound", err)
	}
	for name, fn := range map[string]func(context.Context, digest.Digest) error{"Pin": s.Pin, "Unpin": s.Unpin} {
		if err := fn(t.Context(), d); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	want := []cas.Event{{Kind: cas.Added, Digest: d, Size: 4096}, {Kind: cas.Removed, Digest: d, Size: 4096}}
	if got := evs.list(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("events = %+v, want %+v", got, want)
	}
	if u := s.Usage(); u.Bytes != 0 || u.Blobs != 0 {
		t.Errorf("Usage() = %+v", u)
	}
	// Deleted means it can be written again.
	put(t, s, d, b, cas.WriteOptions{})
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(10, 7, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", State: cas.StateLocal})
	steps := []struct {
		name string
		op   func() error
		want cas.Info
	}{
		{"committed", func() error { return nil }, cas.Info{State: cas.StateLocal}},
		{"pin", func() error { return s.Pin(t.Context(), d) }, cas.Info{State: cas.StateLocal, Pinned: true}},
		{"replicate", func() error { return s.SetState(t.Context(), d, cas.StateReplicated) }, cas.Info{State: cas.StateReplicated, Pinned: true}},
		{"unpin", func() error { return s.Unpin(t.Context(), d) }, cas.Info{State: cas.StateReplicated}},
		{"unpin again", func() error { return s.Unpin(t.Context(), d) }, cas.Info{State: cas.StateReplicated}},
	}
	for _, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		info, err := s.Stat(t.Context(), d)
		if err != nil {
			t.Fatalf("%s: Stat: %v", st.name, err)
		}
		if info.State != st.want.State || info.Pinned != st.want.Pinned || info.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("%s: Stat() = %+v", st.name, info)
		}
	}
	if err := s.SetState(t.Context(), d, 7); err == nil {
		t.Error("SetState(7) succeeded")
	}
}

func TestWalk(t *testing.T) {
	t.Parallel()
	// Blob files placed by hand are indexed at Open in one transaction:
	// quicker than 300 commits, and more than one Walk batch.
	dir := t.TempDir()
	want := make(map[digest.Digest]int64)
	for i := range 300 {
		b, d := testBlob(i+1, uint64(i), digest.SHA256)
		if err := os.MkdirAll(filepath.Dir(blobFile(dir, d)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blobFile(dir, d), b, 0o644); err != nil {
			t.Fatal(err)
		}
		want[d] = int64(len(b))
	}
	s, err := cas.Open(t.Context(), cas.DefaultConfig(dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	got := make(map[digest.Digest]int64)
	err = s.Walk(t.Context(), func(info cas.Info) error {
		if _, dup := got[info.Digest]; dup {
			t.Errorf("Walk visited %s twice", info.Digest)
		}
		got[info.Digest] = info.Size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Walk visited %d blobs, want %d", len(got), len(want))
	}
	for d, n := range want {
		if got[d] != n {
			t.Errorf("Walk: %s size %d, want %d", d, got[d], n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(t.Context(), func(cas.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with stopping fn: err = %v after %d calls", err, calls)
	}
}

func TestUsageLimits(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, func(c *cas.Config) { c.MaxBytes = 1000; c.HighWatermark = 0.8; c.LowWatermark = 0.5 })
	b, d := testBlob(100, 8, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{})
	if got, want := s.Usage(), (cas.Usage{Bytes: 100, Blobs: 1, Limit: 1000, High: 800, Low: 500}); got != want {
		t.Errorf("Usage() = %+v, want %+v", got, want)
	}

	fs, _ := openStore(t, nil)
	put(t, fs, d, b, cas.WriteOptions{})
	u := fs.Usage()
	if u.Bytes != 100 || u.Blobs != 1 || u.Limit <= u.Bytes {
		t.Errorf("filesystem Usage() = %+v, want a limit above the bytes cached", u)
	}
	if u.High != int64(float64(u.Limit)*0.90) || u.Low != int64(float64(u.Limit)*0.75) {
		t.Errorf("filesystem Usage() = %+v, want watermarks at 90%% and 75%%", u)
	}
}

func bytesReader(b []byte) io.Reader { return &onceReader{b: b} }

// onceReader hands out its bytes in small pieces, as a network body does.
type onceReader struct{ b []byte }

func (r *onceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 10000)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestOnChangeMayUseStore(t *testing.T) {
	t.Parallel()
	var s *cas.Store
	var problems []string
	s, _ = openStore(t, func(c *cas.Config) {
		c.MaxBytes, c.HighWatermark, c.LowWatermark = 100, 0.5, 0.1
		c.OnChange = func(ev cas.Event) {
			_, err := s.Stat(context.Background(), ev.Digest)
			if (ev.Kind == cas.Added) != (err == nil) {
				problems = append(problems, fmt.Sprintf("%+v: Stat err = %v", ev, err))
			}
			_ = s.Usage()
		}
	})
	b, d := testBlob(60, 17, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{})
	if _, err := s.Evict(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(t.Context(), bytesReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(t.Context(), d, cas.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
