package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

func addrInfo(n *Node) peer.AddrInfo {
	return peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}
}

// verifier checks that dst holds the blob of digest d.
func verifier(dst *memFile, d digest.Digest) func(context.Context) error {
	return func(context.Context) error {
		sum := sha256.Sum256(dst.Bytes())
		if got := digest.NewDigestFromBytes(digest.SHA256, sum[:]); got != d {
			return fmt.Errorf("got %s, want %s", got, d)
		}
		return nil
	}
}

// corrupted returns a copy of blob with one byte flipped in every chunk.
func corrupted(blob []byte, chunk int) []byte {
	bad := bytes.Clone(blob)
	for i := chunk / 2; i < len(bad); i += chunk {
		bad[i] ^= 0xff
	}
	return bad
}

// TestFetchBlamesCorruptPeer downloads from three providers, one of which
// serves corrupt bytes: the first attempt fails verification, the retry
// isolates the culprit, and only that peer is penalised and banned.
func TestFetchBlamesCorruptPeer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	blob := randomBlob(2, 1<<20)
	d := digest.FromBytes(blob)

	good1, good2, evil := NewMemorySource(), NewMemorySource(), NewMemorySource()
	good1.Put(blob)
	good2.Put(blob)
	evil.PutAs(d, corrupted(blob, int(cfg.Download.ChunkSize)))
	a, b, c := startNode(t, cfg, good1), startNode(t, cfg, evil), startNode(t, cfg, good2)
	providers := []peer.AddrInfo{addrInfo(a), addrInfo(b), addrInfo(c)}

	// Unmeasured providers tie on the prior, and the scored download may
	// leave one out entirely (then the corrupt peer sent nothing and there
	// is nothing to blame): such a try starts over with a fresh client.
	var (
		client *Node
		res    FetchResult
		dst    *memFile
	)
	for try := 1; ; try++ {
		client = startNode(t, cfg, NewMemorySource())
		dst = newMemFile(int64(len(blob)))
		var err error
		res, err = client.Fetch(ctx, d, int64(len(blob)), providers, dst, verifier(dst, d))
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if res.Attempts > 1 || res.Last.BytesByPeer[b.ID()] > 0 || try == 5 {
			break
		}
		t.Logf("try %d: the corrupt peer was never asked; again with a fresh client", try)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("fetched bytes differ")
	}
	if res.Attempts < 2 {
		t.Fatalf("Attempts = %d: the corrupt peer was never used", res.Attempts)
	}
	if !slices.Equal(res.Blamed, []peer.ID{b.ID()}) {
		t.Fatalf("Blamed = %v, want only the corrupt peer %s", res.Blamed, b.ID())
	}
	if client.Score(b.ID()).BannedUntil.IsZero() {
		t.Fatal("corrupt peer not banned")
	}
	for _, p := range []*Node{a, c} {
		if !client.Score(p.ID()).BannedUntil.IsZero() {
			t.Fatalf("honest peer %s banned", p.ID())
		}
	}

	// The next download leaves the banned peer out by itself.
	dst2 := newMemFile(int64(len(blob)))
	st, err := client.Download(ctx, d, int64(len(blob)), providers, dst2)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if st.BytesByPeer[b.ID()] != 0 || !bytes.Equal(dst2.Bytes(), blob) {
		t.Fatalf("banned peer used again: %v", st.BytesByPeer)
	}
}

func TestFetchOnlyCorruptProvider(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	blob := randomBlob(3, 300<<10)
	d := digest.FromBytes(blob)
	evil := NewMemorySource()
	evil.PutAs(d, corrupted(blob, 1000))
	client := startNode(t, cfg, NewMemorySource())
	e := startNode(t, cfg, evil)

	dst := newMemFile(int64(len(blob)))
	res, err := client.Fetch(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(e)}, dst, verifier(dst, d))
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Fetch err = %v, want ErrNoProviders", err)
	}
	if !slices.Equal(res.Blamed, []peer.ID{e.ID()}) {
		t.Fatalf("Blamed = %v, want %s", res.Blamed, e.ID())
	}
}

// stallSource serves the first after bytes of every response, then hangs
// until the request is abandoned.
type stallSource struct {
	*MemorySource
	after int64
}

func (s stallSource) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	r, size, err := s.MemorySource.OpenBlob(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return &stallReader{ReadSeekCloser: r, ctx: ctx, left: s.after}, size, nil
}

type stallReader struct {
	io.ReadSeekCloser
	ctx  context.Context
	left int64
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	n, err := r.ReadSeekCloser.Read(p[:min(int64(len(p)), r.left)])
	r.left -= int64(n)
	return n, err
}

// TestDownloadStalledPeerRangesMove: the stall watchdog drops a peer that
// sends nothing and its chunks go to the others (the random policy, which
// has no expected times to judge a peer by; TestDownloadScoredMovesStalledRange
// covers the scored one).
func TestDownloadStalledPeerRangesMove(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Download.Selection = SelectRandom
	cfg.Download.StallTimeout = time.Second
	blob := randomBlob(4, 1<<20)
	slow := stallSource{MemorySource: NewMemorySource(), after: 10 << 10}
	d := slow.Put(blob)
	fine := NewMemorySource()
	fine.Put(blob)
	client := startNode(t, cfg, NewMemorySource())
	s, f := startNode(t, cfg, slow), startNode(t, cfg, fine)

	dst := newMemFile(int64(len(blob)))
	st, err := client.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(s), addrInfo(f)}, dst)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("downloaded bytes differ")
	}
	if err := st.Failures[s.ID()]; !errors.Is(err, errStalled) {
		t.Fatalf("stalled peer's failure = %v, want errStalled", err)
	}
	for i, c := range st.Chunks {
		if c.Peer != f.ID() {
			t.Fatalf("chunk %d from %s, want every chunk from the healthy peer", i, c.Peer)
		}
	}
	if client.Score(s.ID()).Failures <= 0 {
		t.Fatal("stalled peer not penalised")
	}
}

func TestDownloadSpareReplacesFailedPeer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Download.MaxPeers = 1
	blob := randomBlob(5, 200<<10)
	has := NewMemorySource()
	d := has.Put(blob)
	client := startNode(t, cfg, NewMemorySource())
	empty, full := startNode(t, cfg, NewMemorySource()), startNode(t, cfg, has)

	dst := newMemFile(int64(len(blob)))
	st, err := client.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(empty), addrInfo(full)}, dst)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !errors.Is(st.Failures[empty.ID()], ErrNotFound) || !bytes.Equal(dst.Bytes(), blob) {
		t.Fatalf("failures %v", st.Failures)
	}

	// With no provider left the download says so.
	_, err = client.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(empty)}, newMemFile(int64(len(blob))))
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Download(no good provider) err = %v, want ErrNoProviders", err)
	}
	_, err = client.Download(ctx, d, int64(len(blob)), nil, newMemFile(int64(len(blob))))
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Download(no provider) err = %v, want ErrNoProviders", err)
	}
	for _, size := range []int64{-1, 1 << 62} {
		if _, err := client.Download(ctx, d, size, []peer.AddrInfo{addrInfo(full)}, discardAt{}); err == nil {
			t.Errorf("Download(size %d) accepted", size)
		}
	}
}

// TestDownloadMergesAdjacentChunks checks that a single peer gets runs of
// MaxRun chunks per request rather than one request per chunk.
func TestDownloadSpreadsAndMerges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	blob := randomBlob(6, 2<<20+7)
	srcs := make([]*Node, 3)
	var providers []peer.AddrInfo
	var d digest.Digest
	for i := range srcs {
		m := NewMemorySource()
		d = m.Put(blob)
		srcs[i] = startNode(t, cfg, m)
		providers = append(providers, addrInfo(srcs[i]))
	}
	client := startNode(t, cfg, NewMemorySource())
	dst := newMemFile(int64(len(blob)))
	st, err := client.Download(ctx, d, int64(len(blob)), providers, dst)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("downloaded bytes differ")
	}
	if len(st.Peers()) < 2 {
		t.Fatalf("only %v served: want the blob spread over several peers", st.Peers())
	}
	var sum int64
	for _, b := range st.BytesByPeer {
		sum += b
	}
	if sum != int64(len(blob)) || st.Bytes != sum {
		t.Fatalf("bytes by peer sum to %d, total %d, want %d", sum, st.Bytes, len(blob))
	}
}

// slowSource trickles every response: rate bytes per second, in 8 KiB
// steps (slow, not stalled).
type slowSource struct {
	*MemorySource
	rate int64
}

func (s slowSource) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	r, size, err := s.MemorySource.OpenBlob(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return &slowReader{ReadSeekCloser: r, ctx: ctx, rate: s.rate}, size, nil
}

type slowReader struct {
	io.ReadSeekCloser
	ctx  context.Context
	rate int64
}

func (r *slowReader) Read(p []byte) (int, error) {
	const step = 8 << 10
	t := time.NewTimer(time.Duration(step * int64(time.Second) / r.rate))
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-t.C:
	}
	return r.ReadSeekCloser.Read(p[:min(len(p), step)])
}

// TestDownloadStealsFromSlowPeer: a fast peer takes over the chunks a slow
// (but not stalled) peer leased and had not started.
func TestDownloadStealsFromSlowPeer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Download.StreamsPerPeer = 1
	cfg.Download.MaxRun = 8
	blob := randomBlob(8, 16*int(cfg.Download.ChunkSize))
	slow := slowSource{MemorySource: NewMemorySource(), rate: 256 << 10}
	d := slow.Put(blob)
	fast := NewMemorySource()
	fast.Put(blob)
	client := startNode(t, cfg, NewMemorySource())
	s, f := startNode(t, cfg, slow), startNode(t, cfg, fast)

	dst := newMemFile(int64(len(blob)))
	st, err := client.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(s), addrInfo(f)}, dst)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("downloaded bytes differ")
	}
	slowChunks := 0
	for _, c := range st.Chunks {
		if c.Peer == s.ID() {
			slowChunks++
		}
	}
	// Without stealing the slow peer would deliver the 8 chunks it leased
	// first (2 s at 256 KiB/s); with it, it keeps about two.
	if slowChunks > 3 {
		t.Fatalf("slow peer delivered %d chunks, want at most 3", slowChunks)
	}
	if len(st.Failures) != 0 {
		t.Fatalf("failures %v: a stolen run is not a failure", st.Failures)
	}
}
