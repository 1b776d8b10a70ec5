package cas_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// flipByte changes one byte of path in place, keeping its size (a bit rot
// or a stray write behind the store's back).
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// reopen closes s and opens the store in cfg.Dir again (an agent restart).
func reopen(t *testing.T, s *cas.Store, cfg cas.Config) *cas.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := cas.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// TestVerifyAfterRestart: blobs on disk at Open need a check; a blob
// changed behind the store's back is found by Verify, removed (with a
// Removed event) and reported as ErrCorrupt; a good one passes once and
// needs no second check; a fresh commit of the same digest is good again.
func TestVerifyAfterRestart(t *testing.T) {
	t.Parallel()
	var evs events
	s, cfg := openStore(t, func(c *cas.Config) { c.OnChange = evs.record })
	good, goodD := testBlob(300<<10, 1, digest.SHA256)
	bad, badD := testBlob(200<<10, 2, digest.SHA512)
	put(t, s, goodD, good, cas.WriteOptions{State: cas.StateReplicated})
	put(t, s, badD, bad, cas.WriteOptions{State: cas.StateReplicated})
	if s.NeedsVerify(goodD) {
		t.Fatal("a blob committed by this process needs a check")
	}
	s = reopen(t, s, cfg)
	if !s.NeedsVerify(goodD) || !s.NeedsVerify(badD) || s.Unverified() != 2 {
		t.Fatalf("after reopen: NeedsVerify %v %v, Unverified %d", s.NeedsVerify(goodD), s.NeedsVerify(badD), s.Unverified())
	}
	flipByte(t, blobFile(cfg.Dir, badD), 4096)

	if err := s.Verify(t.Context(), goodD, 0); err != nil {
		t.Fatalf("Verify good blob: %v", err)
	}
	if s.NeedsVerify(goodD) {
		t.Fatal("good blob still needs a check after Verify")
	}
	err := s.Verify(t.Context(), badD, 0)
	if !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("Verify corrupt blob: %v, want ErrCorrupt", err)
	}
	assertAbsent(t, s, cfg.Dir, badD)
	if u := s.Usage(); u.Blobs != 1 || u.Bytes != int64(len(good)) {
		t.Fatalf("usage after removal: %+v", u)
	}
	found := false
	for _, ev := range (&evs).list() {
		found = found || (ev.Kind == cas.Removed && ev.Digest == badD)
	}
	if !found {
		t.Fatal("no Removed event for the corrupt blob (it would stay announced to peers)")
	}
	// Refetched: a new commit serves the right bytes and needs no check.
	put(t, s, badD, bad, cas.WriteOptions{State: cas.StateReplicated})
	assertBytes(t, "refetched blob", readBlob(t, s, badD), bad)
	if s.NeedsVerify(badD) {
		t.Fatal("refetched blob needs a check")
	}
}

// TestVerifyTruncated: a file cut short keeps its index entry until Verify
// sees the size differ from the index.
func TestVerifyTruncated(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(100<<10, 3, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{})
	if err := os.Truncate(blobFile(cfg.Dir, d), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(t.Context(), d, 0); !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("Verify truncated blob: %v, want ErrCorrupt", err)
	}
	assertAbsent(t, s, cfg.Dir, d)
}

// TestVerifyConcurrent: many callers verifying one blob share one read and
// all get the same answer.
func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(1<<20, 4, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{})
	flipByte(t, blobFile(cfg.Dir, d), 0)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Verify(t.Context(), d, 0) })
	}
	wg.Wait()
	for i, err := range errs {
		// A caller that arrives after the removal gets ErrNotFound.
		if !errors.Is(err, cas.ErrCorrupt) && !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	assertAbsent(t, s, cfg.Dir, d)
}

// TestScrubRateLimit: a scrub pass finds every corrupt blob, keeps the good
// ones, and reads no faster than its rate.
func TestScrubRateLimit(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	var all []digest.Digest
	for i := range 6 {
		b, d := testBlob(256<<10, uint64(10+i), digest.SHA256)
		put(t, s, d, b, cas.WriteOptions{State: cas.StateReplicated})
		all = append(all, d)
	}
	flipByte(t, blobFile(cfg.Dir, all[1]), 100)
	flipByte(t, blobFile(cfg.Dir, all[4]), 200<<10)
	var mu sync.Mutex
	var reported []digest.Digest
	scfg := cas.ScrubConfig{BytesPerSecond: 3 << 20, OnCorrupt: func(d digest.Digest, err error) {
		mu.Lock()
		reported = append(reported, d)
		mu.Unlock()
	}}
	start := time.Now()
	res, err := s.Scrub(t.Context(), scfg, false)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Corrupt != 2 || res.Blobs != 4 || len(reported) != 2 {
		t.Fatalf("scrub result %+v, reported %v", res, reported)
	}
	// 1.5 MiB at 3 MiB/s: at least ~0.5 s (less a first buffer's worth).
	if took < 400*time.Millisecond {
		t.Fatalf("scrub of 1.5 MiB took %v at 3 MiB/s: the rate limit is not applied", took)
	}
	for i, d := range all {
		_, err := s.Stat(t.Context(), d)
		if corrupt := i == 1 || i == 4; corrupt != errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("blob %d (corrupt %v): Stat err %v", i, corrupt, err)
		}
	}
}

// TestRunScrubFirstPass: after a restart RunScrub checks the blobs found on
// disk and returns when Interval is 0.
func TestRunScrubFirstPass(t *testing.T) {
	t.Parallel()
	s, cfg := openStore(t, nil)
	b, d := testBlob(64<<10, 20, digest.SHA256)
	put(t, s, d, b, cas.WriteOptions{State: cas.StateReplicated})
	s = reopen(t, s, cfg)
	flipByte(t, blobFile(cfg.Dir, d), 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.RunScrub(ctx, cas.ScrubConfig{}); err != nil {
		t.Fatal(err)
	}
	if s.Unverified() != 0 {
		t.Fatalf("Unverified = %d after the first pass", s.Unverified())
	}
	assertAbsent(t, s, cfg.Dir, d)
}
