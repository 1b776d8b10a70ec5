package cas_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

func TestUploadCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		alg    digest.Algorithm
		chunks int
	}{
		{"sha256 monolithic", digest.SHA256, 1},
		{"sha256 chunked", digest.SHA256, 5},
		{"sha512 chunked", digest.SHA512, 3},
		{"empty", digest.SHA256, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var evs events
			s, cfg := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
			n := 0
			if tt.chunks > 0 {
				n = 500<<10 + 17
			}
			b, d := testBlob(n, uint64(100+i), tt.alg)
			u, err := s.NewUpload(t.Context())
			if err != nil {
				t.Fatalf("NewUpload: %v", err)
			}
			for c := range tt.chunks {
				// Each chunk resumes the session by id, as a registry PATCH does.
				r, err := s.ResumeUpload(t.Context(), u.ID())
				if err != nil {
					t.Fatalf("ResumeUpload: %v", err)
				}
				lo, hi := c*n/tt.chunks, (c+1)*n/tt.chunks
				got, err := r.Append(t.Context(), bytesReader(b[lo:hi]))
				if err != nil || got != int64(hi-lo) {
					t.Fatalf("Append = %d, %v, want %d", got, err, hi-lo)
				}
				if r.Size() != int64(hi) {
					t.Errorf("Size() = %d, want %d", r.Size(), hi)
				}
			}
			info, err := u.Commit(t.Context(), d, cas.WriteOptions{MediaType: "x", State: cas.StateLocal})
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if info.Digest != d || info.Size != int64(n) || info.State != cas.StateLocal || info.MediaType != "x" {
				t.Errorf("Commit() = %+v", info)
			}
			assertBytes(t, "uploaded blob", readBlob(t, s, d), b)
			if _, err := s.ResumeUpload(t.Context(), u.ID()); !errors.Is(err, cas.ErrUploadUnknown) {
				t.Errorf("ResumeUpload after Commit: err = %v, want ErrUploadUnknown", err)
			}
			if _, err := u.Append(t.Context(), bytes.NewReader(b)); !errors.Is(err, cas.ErrUploadUnknown) {
				t.Errorf("Append after Commit: err = %v, want ErrUploadUnknown", err)
			}
			assertEmptyDir(t, cfg.Dir+"/uploads")
			if evs := evs.list(); len(evs) != 1 || evs[0] != (cas.Event{Kind: cas.Added, Digest: d, Size: int64(n)}) {
				t.Errorf("events = %+v", evs)
			}
		})
	}
}

func TestUploadMismatchKeepsUploadOpen(t *testing.T) {
	t.Parallel()
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			s, cfg := openStore(t, nil)
			b, d := testBlob(100<<10, 200, alg)
			_, wrong := testBlob(100<<10, 201, alg)
			u, err := s.NewUpload(t.Context())
			if err != nil {
				t.Fatalf("NewUpload: %v", err)
			}
			if _, err := u.Append(t.Context(), bytesReader(b[:1000])); err != nil {
				t.Fatalf("Append: %v", err)
			}
			// Too early: the digest of what is there does not match yet.
			if _, err := u.Commit(t.Context(), d, cas.WriteOptions{}); !errors.Is(err, cas.ErrDigestMismatch) {
				t.Fatalf("early Commit: err = %v, want ErrDigestMismatch", err)
			}
			if _, err := u.Append(t.Context(), bytesReader(b[1000:])); err != nil {
				t.Fatalf("Append after failed Commit: %v", err)
			}
			if _, err := u.Commit(t.Context(), wrong, cas.WriteOptions{}); !errors.Is(err, cas.ErrDigestMismatch) {
				t.Fatalf("Commit with the wrong digest: err = %v, want ErrDigestMismatch", err)
			}
			assertAbsent(t, s, cfg.Dir, wrong)
			if _, err := s.ResumeUpload(t.Context(), u.ID()); err != nil {
				t.Fatalf("ResumeUpload after mismatch: %v", err)
			}
			if _, err := u.Commit(t.Context(), d, cas.WriteOptions{}); err != nil {
				t.Fatalf("Commit with the right digest: %v", err)
			}
			assertBytes(t, "uploaded blob", readBlob(t, s, d), b)
		})
	}
}

func TestUploadIdempotentAndCancel(t *testing.T) {
	t.Parallel()
	var evs events
	s, cfg := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
	b, d := testBlob(4096, 300, digest.SHA256)
	first := put(t, s, d, b, cas.WriteOptions{MediaType: "first"})

	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	if _, err := u.Append(t.Context(), bytes.NewReader(b)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	info, err := u.Commit(t.Context(), d, cas.WriteOptions{MediaType: "second"})
	if err != nil {
		t.Fatalf("Commit of a committed digest: %v", err)
	}
	if info.MediaType != first.MediaType || info.Size != first.Size {
		t.Errorf("Commit() = %+v, want the existing %+v", info, first)
	}
	if u := s.Usage(); u.Blobs != 1 || u.Bytes != 4096 {
		t.Errorf("Usage() = %+v, want one blob", u)
	}
	if n := len(evs.list()); n != 1 {
		t.Errorf("%d events, want 1 (the first commit)", n)
	}

	c, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatalf("NewUpload: %v", err)
	}
	if c.ID() == u.ID() || len(c.ID()) != 32 {
		t.Errorf("upload ids %q, %q: want distinct 32-char ids", u.ID(), c.ID())
	}
	if _, err := c.Append(t.Context(), bytes.NewReader(b)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := c.Cancel(t.Context()); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := c.Cancel(t.Context()); !errors.Is(err, cas.ErrUploadUnknown) {
		t.Errorf("second Cancel: err = %v, want ErrUploadUnknown", err)
	}
	if _, err := s.ResumeUpload(t.Context(), c.ID()); !errors.Is(err, cas.ErrUploadUnknown) {
		t.Errorf("ResumeUpload after Cancel: err = %v, want ErrUploadUnknown", err)
	}
	if _, err := c.Commit(t.Context(), d, cas.WriteOptions{}); !errors.Is(err, cas.ErrUploadUnknown) {
		t.Errorf("Commit after Cancel: err = %v, want ErrUploadUnknown", err)
	}
	assertEmptyDir(t, cfg.Dir+"/uploads")
}

func TestUploadWhileWriterCommits(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, nil)
	b, d := testBlob(8192, 400, digest.SHA256)
	w, err := s.Create(t.Context(), d, int64(len(b)), cas.WriteOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	f, err := s.Follow(t.Context(), d)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	defer f.Close()
	// A push of the same blob lands first.
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(t.Context(), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(t.Context(), d, cas.WriteOptions{}); err != nil {
		t.Fatalf("upload Commit: %v", err)
	}
	// The writer's verified copy is redundant: its Commit succeeds.
	if _, err := w.Commit(t.Context()); err != nil {
		t.Fatalf("writer Commit: %v", err)
	}
	if err := f.Wait(t.Context()); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if u := s.Usage(); u.Blobs != 1 || u.Bytes != 8192 {
		t.Errorf("Usage() = %+v, want one blob", u)
	}
	assertBytes(t, "blob", readBlob(t, s, d), b)
}
