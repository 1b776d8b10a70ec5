package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/opencontainers/go-digest"
)

func TestLatencyWindow(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	series := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	for _, c := range []struct {
		name string
		add  []time.Duration
		p80  time.Duration
		want time.Duration
	}{
		{"empty", nil, 0, hedgeFirst},
		{"too few to judge", ms(500, 600, 700), 700 * time.Millisecond, hedgeFirst},
		{"p80 by nearest rank", ms(1000, 900, 800, 700, 600, 500, 400, 300, 200, 100), 800 * time.Millisecond, 800 * time.Millisecond},
		{"floor", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 8 * time.Millisecond, hedgeFloor},
		{"only the recent window counts",
			append(series(hedgeWindow, time.Second), series(hedgeWindow, 100*time.Millisecond)...),
			100 * time.Millisecond, 100 * time.Millisecond},
		{"a slow fifth of the window is not hedged",
			append(series(26, 100*time.Millisecond), series(6, 2*time.Second)...),
			100 * time.Millisecond, 100 * time.Millisecond},
		{"a slow quarter is",
			append(series(24, 100*time.Millisecond), series(8, 2*time.Second)...),
			2 * time.Second, 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var w latencyWindow
			for _, d := range c.add {
				w.add(d)
			}
			if got := w.quantile(hedgeQuantile); got != c.p80 {
				t.Errorf("p80 = %v, want %v", got, c.p80)
			}
			if got := w.hedgeAfter(); got != c.want {
				t.Errorf("hedgeAfter = %v, want %v", got, c.want)
			}
		})
	}
}

// hedgePeers maps swarm peers by ID.
func hedgePeers(ps ...*swarmPeer) map[peer.ID]*swarmPeer {
	m := map[peer.ID]*swarmPeer{}
	for _, sp := range ps {
		m[sp.ai.ID] = sp
	}
	return m
}

func TestHedgeHolder(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const size, perPeer = 100, 2
	sp := func(id string, sent, inflight int) *swarmPeer {
		return &swarmPeer{ai: peer.AddrInfo{ID: peer.ID(id)}, sent: sent, inflight: inflight, have: [][2]int64{{0, size}}}
	}
	failing, busy, full, lacking, unknown := sp("failing", 0, 0), sp("busy", 0, 0), sp("full", 0, perPeer), sp("lacking", 0, 0), sp("unknown", 0, 0)
	failing.fails = maxSwarmFails
	busy.busyUntil = now.Add(time.Millisecond)
	lacking.have = [][2]int64{{0, 10}}
	unknown.have = nil // what it holds is not known yet
	for _, c := range []struct {
		name  string
		peers []*swarmPeer
		want  []peer.ID // any of these; none: nil
	}{
		{"only the one asked", []*swarmPeer{sp("asked", 0, 0)}, nil},
		{"none eligible", []*swarmPeer{sp("asked", 0, 0), failing, busy, full, lacking}, nil},
		{"fewest requests sent", []*swarmPeer{sp("asked", 0, 0), sp("a", 3, 0), sp("b", 1, 1), failing}, []peer.ID{"b"}},
		{"then fewest in flight", []*swarmPeer{sp("asked", 0, 0), sp("a", 2, 1), sp("b", 2, 0)}, []peer.ID{"b"}},
		{"ties at random", []*swarmPeer{sp("asked", 0, 0), sp("a", 2, 1), sp("b", 2, 1)}, []peer.ID{"a", "b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			peers := hedgePeers(append(c.peers, unknown)...)
			seen := map[peer.ID]bool{}
			for range 200 {
				got := hedgeHolder(peers, 20, 40, perPeer, "asked", now)
				if got == nil {
					seen[""] = true
					continue
				}
				seen[got.ai.ID] = true
			}
			if len(c.want) == 0 {
				if len(seen) != 1 || !seen[""] {
					t.Fatalf("picked %v, want none", seen)
				}
				return
			}
			if len(seen) != len(c.want) {
				t.Fatalf("picked %v, want each of %v", seen, c.want)
			}
			for _, id := range c.want {
				if !seen[id] {
					t.Fatalf("picked %v, want each of %v", seen, c.want)
				}
			}
		})
	}
}

// TestPickChunkHedged: the hedged policy asks a chunk of its least used
// holder, and still takes chunks rarest first.
func TestPickChunkHedged(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const chunk, size = 10, 40
	all := [][2]int64{{0, size}}
	a := &swarmPeer{ai: peer.AddrInfo{ID: "a"}, sent: 5, have: all}
	b := &swarmPeer{ai: peer.AddrInfo{ID: "b"}, sent: 1, inflight: 1, have: all}
	peers := hedgePeers(a, b)
	done, inflight := make([]bool, 4), make([]bool, 4)
	for range 50 {
		c, sp := pickChunk(peers, done, inflight, chunk, size, 2, false, true, now)
		if sp != b || c < 0 {
			t.Fatalf("picked chunk %d from %v; want b, the least used", c, sp)
		}
	}
	// Chunk 2 is held by a alone: the rarest goes first, from its holder.
	b.have = [][2]int64{{0, 20}, {30, 40}}
	if c, sp := pickChunk(peers, done, inflight, chunk, size, 2, false, true, now); c != 2 || sp != a {
		t.Fatalf("picked chunk %d from %v; want chunk 2 from a", c, sp)
	}
}

// TestPickChunkInOrderFromOneCompleteHolder: from a single provider that
// holds the whole blob, chunks go in order (the cache hashes them as they
// land and clients following the blob get bytes at once); with another
// provider still downloading, the chunks it lacks are taken in random
// order, so that hosts fetching from the same holders take different
// chunks to trade.
func TestPickChunkInOrderFromOneCompleteHolder(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const chunk, size = 10, 80
	a := &swarmPeer{ai: peer.AddrInfo{ID: "a"}, have: [][2]int64{{0, size}}}
	peers := hedgePeers(a)
	done, inflight := make([]bool, 8), make([]bool, 8)
	for want := range 8 {
		c, sp := pickChunk(peers, done, inflight, chunk, size, 8, true, false, now)
		if c != want || sp != a {
			t.Fatalf("pick %d: chunk %d from %v, want chunk %d from a", want, c, sp, want)
		}
		inflight[c] = true
	}
	// a partial holder: the chunks it lacks (held by a alone) are rarer,
	// and among them the order is random.
	b := &swarmPeer{ai: peer.AddrInfo{ID: "b"}, have: [][2]int64{{0, 20}}}
	peers = hedgePeers(a, b)
	firsts := map[int]bool{}
	for range 200 {
		clear(inflight)
		c, _ := pickChunk(peers, done, inflight, chunk, size, 8, false, false, now)
		if c < 2 {
			t.Fatalf("picked chunk %d, held by both; want one only a holds", c)
		}
		firsts[c] = true
	}
	if len(firsts) < 3 {
		t.Fatalf("first picks %v over 200 tries: want random order among the rarest", firsts)
	}
}

// writeLog is an io.WriterAt that records every write and can fail some.
type writeLog struct {
	mu     sync.Mutex
	buf    []byte
	writes []int64 // offsets written, in order
	fail   int     // fail this many writes first
}

func (w *writeLog) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail > 0 {
		w.fail--
		return 0, errors.New("disk full")
	}
	w.writes = append(w.writes, off)
	return copy(w.buf[off:], p), nil
}

// TestHedgerOneWriterPerChunk: of two requests for one chunk, only the
// first to have all of it writes to dst, whole; the slower one, a failed
// one and a cancelled one write nothing, whatever they received.
func TestHedgerOneWriterPerChunk(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	write := func(t *testing.T, w io.WriterAt, p string, off int64) {
		t.Helper()
		if _, err := w.WriteAt([]byte(p), off); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the first complete answer wins", func(t *testing.T) {
		t.Parallel()
		dst := &writeLog{buf: make([]byte, 10)}
		h := newHedger(dst, 3, 4, 10)
		ctxA, wa, finA := h.begin(t.Context(), 1, "a", now)
		_, wb, finB := h.begin(t.Context(), 1, "b", now.Add(time.Second))
		write(t, wa, "AA", 4) // a is slow: half its chunk so far
		write(t, wb, "BBBB", 4)
		if err := finB(nil); err != nil {
			t.Fatalf("winner: %v", err)
		}
		if h.end(1, "b", true, time.Second) {
			t.Fatal("the chunk still counts as in flight after its winner")
		}
		if ctxA.Err() == nil {
			t.Fatal("the rival was not cancelled")
		}
		write(t, wa, "AA", 6) // the rival's last bytes arrive anyway
		if err := finA(nil); !errors.Is(err, errHedgeLost) {
			t.Fatalf("rival: %v, want errHedgeLost", err)
		}
		if h.end(1, "a", false, 0) || len(h.running) != 0 {
			t.Fatalf("requests left: %v", h.running)
		}
		if got := string(dst.buf[4:8]); got != "BBBB" || len(dst.writes) != 1 {
			t.Fatalf("dst chunk %q after writes at %v; want only BBBB", got, dst.writes)
		}
		if _, err := wa.WriteAt([]byte("AAA"), 6); err == nil {
			t.Fatal("a write past the chunk was accepted")
		}
	})

	t.Run("a failed request writes nothing", func(t *testing.T) {
		t.Parallel()
		dst := &writeLog{buf: make([]byte, 10)}
		h := newHedger(dst, 3, 4, 10)
		_, wa, finA := h.begin(t.Context(), 2, "a", now)
		_, wb, finB := h.begin(t.Context(), 2, "b", now)
		write(t, wa, "A", 8) // the last chunk is 2 bytes
		if err := finA(io.ErrUnexpectedEOF); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("failed request: %v", err)
		}
		if !h.end(2, "a", false, 0) {
			t.Fatal("the chunk left flight while its rival runs")
		}
		if len(dst.writes) != 0 {
			t.Fatalf("a failed request wrote at %v", dst.writes)
		}
		write(t, wb, "BB", 8)
		if err := finB(nil); err != nil || string(dst.buf[8:]) != "BB" {
			t.Fatalf("rival: %v, dst %q", err, dst.buf[8:])
		}
	})

	t.Run("a failed write gives the chunk back", func(t *testing.T) {
		t.Parallel()
		dst := &writeLog{buf: make([]byte, 10), fail: 1}
		h := newHedger(dst, 3, 4, 10)
		_, wa, finA := h.begin(t.Context(), 0, "a", now)
		_, wb, finB := h.begin(t.Context(), 0, "b", now)
		write(t, wa, "AAAA", 0)
		write(t, wb, "BBBB", 0)
		if err := finA(nil); err == nil || errors.Is(err, errHedgeLost) {
			t.Fatalf("failed write: %v", err)
		}
		if err := finB(nil); err != nil || string(dst.buf[:4]) != "BBBB" {
			t.Fatalf("rival after a failed write: %v, dst %q", err, dst.buf[:4])
		}
	})

	t.Run("racing requests", func(t *testing.T) {
		t.Parallel()
		for range 200 {
			dst := &writeLog{buf: make([]byte, 8)}
			h := newHedger(dst, 1, 8, 8)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, fill := range []string{"AAAAAAAA", "BBBBBBBB"} {
				_, w, finish := h.begin(t.Context(), 0, peer.ID(fill[:1]), now)
				wg.Go(func() {
					for k := range int64(8) {
						if _, err := w.WriteAt([]byte(fill[k:k+1]), k); err != nil {
							errs[i] = err
							return
						}
					}
					errs[i] = finish(nil)
				})
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won = i
				case !errors.Is(err, errHedgeLost):
					t.Fatalf("request %d: %v", i, err)
				}
			}
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("outcomes %v; want one winner", errs)
			}
			if want := bytes.Repeat([]byte{"AB"[won]}, 8); !bytes.Equal(dst.buf, want) || len(dst.writes) != 1 {
				t.Fatalf("dst %q after writes at %v; want %q once", dst.buf, dst.writes, want)
			}
		}
	})
}

// TestHedgerNext: a chunk is hedged once its request has run longer than
// the hedge delay, to another holder, and only while one request runs.
func TestHedgerNext(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	const chunk, size = 10, 30
	all := [][2]int64{{0, size}}
	a := &swarmPeer{ai: peer.AddrInfo{ID: "a"}, have: all}
	b := &swarmPeer{ai: peer.AddrInfo{ID: "b"}, sent: 1, have: all}
	c := &swarmPeer{ai: peer.AddrInfo{ID: "c"}, sent: 2, have: all}
	peers := hedgePeers(a, b, c)
	var none *hedger
	if none.end(0, "a", false, 0) {
		t.Fatal("a nil hedger keeps a chunk in flight")
	}
	if _, sp := none.next(peers, 2, t0); sp != nil {
		t.Fatal("a nil hedger hedges")
	}

	h := newHedger(&writeLog{buf: make([]byte, size)}, 3, chunk, size)
	h.begin(t.Context(), 1, "a", t0)
	if _, sp := h.next(peers, 2, t0.Add(hedgeFirst-time.Millisecond)); sp != nil {
		t.Fatalf("hedged to %s before the first hedge delay", sp.ai.ID)
	}
	ch, sp := h.next(peers, 2, t0.Add(hedgeFirst))
	if ch != 1 || sp != b {
		t.Fatalf("hedge = chunk %d to %v; want chunk 1 to b, the least used other holder", ch, sp)
	}
	t1 := t0.Add(hedgeFirst)
	h.begin(t.Context(), 1, "b", t1)
	if _, sp := h.next(peers, 2, t1.Add(time.Hour)); sp != nil {
		t.Fatal("a chunk with two requests was hedged again")
	}
	// The first request fails; once the delay has come down (four quick
	// chunks), the hedge is itself hedged, to the least used holder but b.
	if !h.end(1, "a", false, 0) {
		t.Fatal("chunk 1 left flight while b runs")
	}
	for range hedgeMinSamples {
		h.lat.add(10 * time.Millisecond)
	}
	if _, sp := h.next(peers, 2, t1.Add(hedgeFloor-time.Millisecond)); sp != nil {
		t.Fatal("hedged before the floor")
	}
	if ch, sp := h.next(peers, 2, t1.Add(hedgeFloor)); ch != 1 || sp != a {
		t.Fatalf("second hedge = chunk %d to %v; want chunk 1 to a", ch, sp)
	}
	// A chunk already claimed is not hedged.
	h.claimed[1].Store(true)
	if _, sp := h.next(peers, 2, t1.Add(time.Hour)); sp != nil {
		t.Fatal("a delivered chunk was hedged")
	}
}

// throttledSource serves a blob whose reads trickle: the provider is alive
// and holds everything, but sends perRead bytes per interval.
type throttledSource struct {
	d        digest.Digest
	blob     []byte
	perRead  int
	interval time.Duration
}

func (s *throttledSource) OpenBlob(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if d != s.d {
		return nil, 0, ErrNotFound
	}
	return &throttledReader{Reader: bytes.NewReader(s.blob), s: s}, int64(len(s.blob)), nil
}

type throttledReader struct {
	*bytes.Reader
	s *throttledSource
}

func (r *throttledReader) Read(p []byte) (int, error) {
	time.Sleep(r.s.interval)
	return r.Reader.Read(p[:min(len(p), r.s.perRead)])
}

func (r *throttledReader) Close() error { return nil }

// TestSwarmHedgedRescuesSlowProvider: over mocknet, with one provider on a
// fast link and one on a slow link that serves 16 KiB/s, the hedged swarm
// asks the slow one too (it is the least used), then hedges its requests
// to the fast one: the blob arrives whole long before a single chunk could
// come from the slow provider, and no byte of its lost races lands.
func TestSwarmHedgedRescuesSlowProvider(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: time.Millisecond, Bandwidth: 32 << 20})

	const chunk = 64 << 10 // 4s from the slow provider
	blob := randomBlob(11, 4<<20)
	owner := NewMemorySource()
	d := owner.Put(blob)
	// The slow provider's source trickles (a link that slow would also
	// slow its HEAD answers down, and the fast provider alone would have
	// finished before it was asked); and it sends wrong bytes, which must
	// never reach dst.
	bad := bytes.Repeat([]byte{0xee}, len(blob))
	srcs := []BlobSource{NewMemorySource(), &throttledSource{d: d, blob: bad, perRead: 4 << 10, interval: 250 * time.Millisecond}, owner}
	nodes := make([]*Node, len(srcs))
	for i, src := range srcs {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatalf("GenPeer: %v", err)
		}
		cfg := testConfig()
		cfg.Host = h
		cfg.Download.Selection = SelectHedged
		nodes[i] = startNode(t, cfg, src)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatalf("LinkAll: %v", err)
	}
	me, slow, fast := nodes[0], nodes[1], nodes[2]
	for _, l := range mn.LinksBetweenPeers(me.ID(), slow.ID()) {
		l.SetOptions(mocknet.LinkOptions{Latency: 5 * time.Millisecond, Bandwidth: 256 << 10})
	}
	for _, p := range []*Node{slow, fast} {
		if err := me.Host().Connect(ctx, peer.AddrInfo{ID: p.ID(), Addrs: p.Host().Addrs()}); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}

	dst := newMemFile(int64(len(blob)))
	provs := []peer.AddrInfo{{ID: slow.ID(), Addrs: slow.Host().Addrs()}, {ID: fast.ID(), Addrs: fast.Host().Addrs()}}
	start := time.Now()
	st, err := me.Swarm(ctx, d, int64(len(blob)), provs, dst, SwarmOptions{ChunkSize: chunk, Stall: 20 * time.Second, GiveUp: 20 * time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Swarm: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("swarmed bytes differ: a slow rival's bytes landed")
	}
	t.Logf("took %v; requests %d, hedges %d, bytes by peer %v", took, st.Requests, st.Hedges, st.BytesByPeer)
	if st.Hedges == 0 {
		t.Fatal("no request was hedged")
	}
	if took > 2*time.Second {
		t.Fatalf("took %v; a hedge should have rescued the slow provider's chunks (one takes 4s there)", took)
	}
	if st.BytesByPeer[fast.ID()] < int64(len(blob)) {
		t.Fatalf("the fast provider sent %d bytes; want the whole blob", st.BytesByPeer[fast.ID()])
	}
}

// TestSwarmWake: after a pass, the swarm sleeps until the first moment a
// pass could do something new: a holder's busy pause or a refusal ends, or
// a running request becomes old enough to hedge; never past the limit.
func TestSwarmWake(t *testing.T) {
	now := time.Unix(1000, 0)
	limit := now.Add(100 * time.Millisecond)
	sp := &swarmPeer{}
	if got := sp.wake(now, limit); !got.Equal(limit) {
		t.Errorf("idle peer: wake %v, want the limit", got.Sub(now))
	}
	sp.busyUntil = now.Add(-time.Millisecond) // over already
	sp.refused = map[int64]time.Time{0: now.Add(70 * time.Millisecond), 4: now.Add(-5 * time.Millisecond)}
	if got := sp.wake(now, limit); got.Sub(now) != 70*time.Millisecond {
		t.Errorf("refusal ending in 70ms: wake %v", got.Sub(now))
	}
	sp.busyUntil = now.Add(30 * time.Millisecond)
	if got := sp.wake(now, limit); got.Sub(now) != 30*time.Millisecond {
		t.Errorf("busy for 30ms: wake %v", got.Sub(now))
	}

	var nilHedger *hedger
	if got := nilHedger.wake(nil, now, limit); !got.Equal(limit) {
		t.Errorf("no hedger: wake %v, want the limit", got.Sub(now))
	}
	h := newHedger(&chunkBuffer{b: make([]byte, 10)}, 3, 4, 10)
	a := peer.ID("a")
	peers := map[peer.ID]*swarmPeer{a: {}}
	// Fewer than hedgeMinSamples durations known: a request is hedged
	// hedgeFirst after it began.
	h.begin(t.Context(), 0, a, now.Add(-hedgeFirst+40*time.Millisecond))
	if got := h.wake(peers, now, limit); got.Sub(now) != 40*time.Millisecond {
		t.Errorf("request hedgeable in 40ms: wake %v", got.Sub(now))
	}
	// A request past the threshold waits for a holder, not for time.
	h2 := newHedger(&chunkBuffer{b: make([]byte, 10)}, 3, 4, 10)
	h2.begin(t.Context(), 1, a, now.Add(-2*hedgeFirst))
	if got := h2.wake(peers, now, limit); !got.Equal(limit) {
		t.Errorf("request already hedgeable: wake %v, want the limit", got.Sub(now))
	}
	// The cached threshold follows new durations.
	for range hedgeMinSamples {
		h2.lat.add(200 * time.Millisecond)
	}
	if got := h2.lat.hedgeAfter(); got != 200*time.Millisecond {
		t.Fatalf("hedgeAfter %v, want 200ms", got)
	}
	h2.lat.add(time.Second)
	h2.lat.add(time.Second)
	if got := h2.lat.hedgeAfter(); got != time.Second {
		t.Errorf("hedgeAfter after two slow requests %v, want 1s (p80 of 6)", got)
	}
}
