package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// partialSource serves one blob of which only some ranges are present, as
// a host that is still downloading it does.
type partialSource struct {
	mu      sync.Mutex
	d       digest.Digest
	blob    []byte
	have    [][2]int64
	changed chan struct{} // closed by the next set
}

func (s *partialSource) set(have ...[2]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.have = have
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

func (s *partialSource) OpenBlob(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if d != s.d {
		return nil, 0, ErrNotFound
	}
	return &partialReader{Reader: bytes.NewReader(s.blob), s: s}, int64(len(s.blob)), nil
}

type partialReader struct {
	*bytes.Reader
	s *partialSource
}

func (r *partialReader) Close() error { return nil }

// Changes is cas.Follower's: closed at the next set.
func (r *partialReader) Changes() <-chan struct{} {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.changed == nil {
		r.s.changed = make(chan struct{})
	}
	return r.s.changed
}

func (r *partialReader) Held() [][2]int64 {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return append([][2]int64(nil), r.s.have...)
}

func (r *partialReader) Available() int64 {
	h := r.Held()
	if len(h) > 0 && h[0][0] == 0 {
		return h[0][1]
	}
	return 0
}

// halfHolders makes a 1 MiB blob and two sources of it, one holding its
// first half and one its second.
func halfHolders(seed uint64) (blob []byte, d digest.Digest, half int64, a, b *partialSource) {
	blob = randomBlob(seed, 1<<20)
	d = digest.FromBytes(blob)
	half = int64(len(blob) / 2)
	a = &partialSource{d: d, blob: blob}
	a.set([2]int64{0, half})
	b = &partialSource{d: d, blob: blob}
	b.set([2]int64{half, int64(len(blob))})
	return blob, d, half, a, b
}

func TestHaveHeader(t *testing.T) {
	for _, c := range []struct {
		in   [][2]int64
		text string
	}{
		{[][2]int64{{0, 10}}, "0-9"},
		{[][2]int64{{0, 10}, {20, 30}}, "0-9,20-29"},
		{[][2]int64{{5, 6}}, "5-5"},
		{[][2]int64{}, "none"},
	} {
		if got := formatHave(c.in); got != c.text {
			t.Errorf("formatHave(%v) = %q, want %q", c.in, got, c.text)
		}
		back, err := parseHave(c.text, 100)
		if err != nil || back == nil || len(back) != len(c.in) || (len(back) > 0 && back[0] != c.in[0]) {
			t.Errorf("parseHave(%q) = %v, %v; want %v", c.text, back, err, c.in)
		}
	}
	if h, err := parseHave("", 42); err != nil || len(h) != 1 || h[0] != [2]int64{0, 42} {
		t.Errorf("empty header = %v, %v; want the whole blob", h, err)
	}
	for _, bad := range []string{"5-3", "0-9,5-20", "0-100", "x-1", "0-9,9-12", "-1-4"} {
		if _, err := parseHave(bad, 100); err == nil {
			t.Errorf("parseHave(%q) accepted", bad)
		}
	}
	if !holds([][2]int64{{0, 10}, {20, 30}}, 20, 30) || holds([][2]int64{{0, 10}, {20, 30}}, 5, 25) {
		t.Error("holds is wrong")
	}
}

// TestSwarmFromPartialPeers: a downloader takes each chunk from a peer that
// holds it, even when no peer holds the whole blob, and a peer asked for a
// range it does not hold answers 416 at once instead of waiting.
func TestSwarmFromPartialPeers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	blob, d, half, a, b := halfHolders(9)
	cfg := testConfig()
	nodes := startFleet(t, 3, cfg, nil, a, b)
	me, pa, pb := nodes[0], nodes[1], nodes[2]

	// A range the peer does not hold: 416 with what it holds, no wait.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(pa.ID(), d), nil)
	req.Header.Set("Range", "bytes=600000-700000")
	req.Header.Set(HeaderHeldOnly, "1")
	start := time.Now()
	resp, err := me.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get(HeaderHave) != "0-524287" {
		t.Fatalf("range not held: %d %s=%q; want 416 and 0-524287", resp.StatusCode, HeaderHave, resp.Header.Get(HeaderHave))
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a range not held made the request wait")
	}

	dst := newMemFile(int64(len(blob)))
	st, err := me.Swarm(ctx, d, int64(len(blob)), []peer.AddrInfo{{ID: pa.ID(), Addrs: pa.Host().Addrs()}, {ID: pb.ID(), Addrs: pb.Host().Addrs()}}, dst, SwarmOptions{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatalf("Swarm: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("swarmed bytes differ")
	}
	if st.BytesByPeer[pa.ID()] != half || st.BytesByPeer[pb.ID()] != half {
		t.Fatalf("bytes by peer %v; want %d from each", st.BytesByPeer, half)
	}

	// Nobody holds the middle: the swarm gives up in bounded time.
	a.set([2]int64{0, 1000})
	b.set([2]int64{half, int64(len(blob))})
	_, err = me.Swarm(ctx, d, int64(len(blob)), []peer.AddrInfo{{ID: pa.ID(), Addrs: pa.Host().Addrs()}, {ID: pb.ID(), Addrs: pb.Host().Addrs()}}, newMemFile(int64(len(blob))), SwarmOptions{ChunkSize: 64 << 10, GiveUp: time.Second})
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Swarm with a hole = %v; want ErrNoProviders", err)
	}
}

// TestAvailabilityWaitsForWanted: a HEAD naming the ranges the asker
// still needs (HeaderWant) is answered when the provider gets one of them,
// with what it holds then; a range that never comes is answered after
// longPollWait; a question without HeaderWant is answered at once.
func TestAvailabilityWaitsForWanted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	blob, d, half, a, _ := halfHolders(11)
	size := int64(len(blob))
	nodes := startFleet(t, 2, testConfig(), nil, a)
	me, pa := nodes[0], nodes[1]
	ai := peer.AddrInfo{ID: pa.ID(), Addrs: pa.Host().Addrs()}

	// Without HeaderWant: what it holds now.
	got, err := me.Availability(ctx, ai, d)
	if err != nil || len(got.Have) != 1 || got.Have[0] != [2]int64{0, half} {
		t.Fatalf("Availability = %v, %v; want [0 %d]", got.Have, err, half)
	}

	// Wanted: the second half's first 64 KiB. The provider gets 32 KiB
	// of it (not whole: no answer yet), then all of it.
	want := [][2]int64{{half, half + 64<<10}}
	type answer struct {
		a   Availability
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		a, err := me.availability(ctx, ai, d, want)
		ch <- answer{a, err}
	}()
	time.Sleep(100 * time.Millisecond)
	a.set([2]int64{0, half + 32<<10})
	select {
	case r := <-ch:
		t.Fatalf("answered %v (%v) before holding a wanted range whole", r.a.Have, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	a.set([2]int64{0, half + 64<<10})
	r := <-ch
	if r.err != nil || len(r.a.Have) != 1 || r.a.Have[0] != [2]int64{0, half + 64<<10} {
		t.Fatalf("long poll = %v, %v; want [0 %d]", r.a.Have, r.err, half+64<<10)
	}

	// A wanted range that never comes: the answer comes after the wait.
	start := time.Now()
	got, err = me.availability(ctx, ai, d, [][2]int64{{size - 1000, size}})
	if err != nil || got.Have[0] != [2]int64{0, half + 64<<10} {
		t.Fatalf("long poll for nothing = %v, %v", got.Have, err)
	}
	if took := time.Since(start); took < longPollWait/2 {
		t.Fatalf("long poll for a range that never came answered after %s; want about %s", took, longPollWait)
	}
}

// TestPickChunkSkipsRefused: a provider that said a chunk was going out
// to another peer is not asked for it again until the time it was given
// passes; its other chunks are asked for meanwhile.
func TestPickChunkSkipsRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const chunk, size = 10, 20
	a := &swarmPeer{ai: peer.AddrInfo{ID: "a"}, have: [][2]int64{{0, size}}, est: Estimate{RTT: time.Millisecond, Throughput: 1e6}}
	peers := hedgePeers(a)
	done, inflight := make([]bool, 2), make([]bool, 2)
	a.refuse(0, chunk, now)
	for range 20 {
		if c, sp := pickChunk(peers, done, inflight, chunk, size, 8, true, false, now); c != 1 || sp != a {
			t.Fatalf("picked chunk %d from %v; want chunk 1 (chunk 0 was refused)", c, sp)
		}
	}
	inflight[1] = true
	if c, sp := pickChunk(peers, done, inflight, chunk, size, 8, true, false, now); sp != nil {
		t.Fatalf("picked chunk %d with the only other chunk refused", c)
	}
	later := now.Add(time.Second)
	if c, sp := pickChunk(peers, done, inflight, chunk, size, 8, true, false, later); c != 0 || sp != a {
		t.Fatalf("a second later: picked chunk %d from %v; want chunk 0 from a", c, sp)
	}
}
