package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// startNodeWith is startNode with a hook that runs between New and Run
// (where SetPeerLimits, or a test's hostile handler, goes).
func startNodeWith(tb testing.TB, cfg Config, src BlobSource, before func(*Node)) *Node {
	tb.Helper()
	n, err := New(tb.Context(), cfg, src)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	before(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return n
}

// peerGet sends GET path from client to server over a libp2p stream.
func peerGet(ctx context.Context, client, server *Node, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PeerURL(server.ID())+path, nil)
	if err != nil {
		return nil, err
	}
	return (&http.Client{Transport: client.PeerTransport()}).Do(req)
}

// TestPeerStreamLimit: a slowloris peer opens blob streams and never reads
// them. It gets MaxStreams of them; the next is refused with 429 at once,
// while another peer is still served in full. When the hog goes away its
// streams are freed once their writes stall for WriteStall (a closed
// libp2p stream does not wake a writer blocked on flow control).
func TestPeerStreamLimit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const limit = 3
	// More than a stream's flow-control window (yamux: up to 16 MiB), so a
	// handler whose client does not read stays blocked.
	blob := randomBlob(41, 40<<20)
	src := NewMemorySource()
	d := src.Put(blob)
	server := startNodeWith(t, testConfig(), src, func(n *Node) {
		n.SetPeerLimits(PeerLimits{MaxStreams: limit, WriteStall: time.Second})
	})
	hog := startNode(t, testConfig(), NewMemorySource())
	polite := startNode(t, testConfig(), NewMemorySource())
	for _, c := range []*Node{hog, polite} {
		if err := c.Connect(ctx, server.Addrs()[0]); err != nil {
			t.Fatal(err)
		}
	}

	hogCtx, stopHog := context.WithCancel(ctx)
	defer stopHog()
	var held []*http.Response
	for i := range limit {
		resp, err := peerGet(hogCtx, hog, server, "/blobs/"+d.String())
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("hog stream %d: %v %v", i, resp, err)
		}
		held = append(held, resp) // headers read, body never
	}
	resp, err := peerGet(ctx, hog, server, "/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("stream %d of a peer at its limit: %d, want 429 with Retry-After", limit+1, resp.StatusCode)
	}
	if want := "too many concurrent blob requests from this peer\n"; string(body) != want {
		t.Fatalf("429 body %q, want %q", body, want)
	}
	// Probes are not blob streams: still answered.
	if resp, err := peerGet(ctx, hog, server, "/probe?bytes=10"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("probe from a peer at its blob limit: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Another peer is unaffected.
	start := time.Now()
	resp, err = peerGet(ctx, polite, server, "/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
		t.Fatalf("polite peer during the slowloris: %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
	t.Logf("polite peer pulled %d MiB in %v while the hog held %d streams", len(blob)>>20, time.Since(start).Round(time.Millisecond), limit)

	// The hog lets go: its streams are freed and it is served again.
	for _, r := range held {
		r.Body.Close()
	}
	stopHog()
	waitFor(t, 10*time.Second, "the hog's streams to be released", func() bool {
		resp, err := peerGet(ctx, hog, server, "/blobs/"+d.String())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK && n == int64(len(blob))
	})
}

// TestPeerByteRate: a peer's blob bytes are paced to BytesPerSecond over
// all its streams together.
func TestPeerByteRate(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const rate = 2 << 20
	blob := randomBlob(42, 1<<20)
	src := NewMemorySource()
	d := src.Put(blob)
	server := startNodeWith(t, testConfig(), src, func(n *Node) { n.SetPeerLimits(PeerLimits{BytesPerSecond: rate}) })
	client := startNode(t, testConfig(), NewMemorySource())
	if err := client.Connect(ctx, server.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	errs := make(chan error, 3)
	for range 3 { // 3 MiB at 2 MiB/s: about 1.5 s
		go func() {
			resp, err := peerGet(ctx, client, server, "/blobs/"+d.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && !bytes.Equal(b, blob) {
				err = fmt.Errorf("body differs (%d bytes)", len(b))
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if took < 1200*time.Millisecond {
		t.Fatalf("3 MiB to one peer took %v at %d B/s: not paced", took, rate)
	}
	t.Logf("3 MiB to one peer at 2 MiB/s took %v", took.Round(time.Millisecond))
}

// hostileHandler answers every blob request the way one kind of bad peer
// would.
func hostileHandler(kind string, blob []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off, n, partial, err := parseRange(r.Header.Get("Range"), int64(len(blob)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
			return
		}
		part := blob[off : off+n]
		status := http.StatusOK
		if partial {
			w.Header().Set("Content-Range", contentRange(off, n, int64(len(blob))))
			status = http.StatusPartialContent
		}
		switch kind {
		case "wrong bytes":
			bad := bytes.Clone(part)
			for i := range bad {
				bad[i] ^= 0x33
			}
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(status)
			w.Write(bad)
		case "truncated":
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(status)
			w.Write(part[:len(part)/2])
			panic(http.ErrAbortHandler) // cut the stream
		case "endless":
			// No Content-Length: stream the range, then garbage, forever
			// (until the reader hangs up or 30 s pass).
			w.WriteHeader(status)
			w.Write(part)
			junk := bytes.Repeat([]byte{0xee}, 32<<10)
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				if _, err := w.Write(junk); err != nil {
					return
				}
			}
		case "trickle":
			// A slowloris server: one byte every 200 ms.
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.WriteHeader(status)
			for i := range part {
				if _, err := w.Write(part[i : i+1]); err != nil {
					return
				}
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	})
}

// TestHostilePeers downloads a blob from a hostile peer and an honest one.
// Whatever the hostile peer sends for its ranges (wrong bytes, a truncated
// body, an endless body, a trickle), the download finishes in bounded time
// with the right bytes from the honest peer, and the hostile peer is
// marked as failed or blamed.
func TestHostilePeers(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"wrong bytes", "truncated", "endless", "trickle"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cfg := testConfig()
			cfg.Download.StallTimeout = 2 * time.Second
			blob := randomBlob(43, 1<<20)
			d := digest.FromBytes(blob)
			honestSrc := NewMemorySource()
			honestSrc.Put(blob)
			client := startNode(t, cfg, NewMemorySource())
			evil := startNodeWith(t, cfg, NewMemorySource(), func(n *Node) { n.server.Handler = hostileHandler(kind, blob) })
			honest := startNode(t, cfg, honestSrc)
			providers := []peer.AddrInfo{addrInfo(evil), addrInfo(honest)}

			start := time.Now()
			dst := newMemFile(int64(len(blob)))
			res, err := client.Fetch(ctx, d, int64(len(blob)), providers, dst, verifier(dst, d))
			if err != nil {
				t.Fatalf("Fetch with a %s peer: %v", kind, err)
			}
			if !bytes.Equal(dst.Bytes(), blob) {
				t.Fatal("fetched bytes differ")
			}
			sc := client.Score(evil.ID())
			blamed := len(res.Blamed) == 1 && res.Blamed[0] == evil.ID()
			// An endless body is harmless: the downloader reads what it
			// asked for and hangs up, so nothing marks the peer.
			// A trickling peer's range is moved to the honest peer; what
			// it sent counts towards its throughput, so it scores as slow.
			slow := kind == "trickle" && sc.Throughput > 0 && sc.Throughput < 10<<10
			// The scored download may leave the hostile peer out from the
			// start (an unmeasured peer at the honest one's mean can lose a
			// tie); a peer that was never asked for bytes cannot misbehave.
			unused := res.Attempts == 1 && res.Last.BytesByPeer[evil.ID()] == 0 && res.Last.Failures[evil.ID()] == nil && sc.Throughput == 0
			if unused {
				t.Logf("%s peer was never asked for a range", kind)
			}
			// A truncating peer whose span the honest peer took over
			// (work stealing) before the cut sent only bytes that verified
			// on the first attempt: its fault never reached the downloader.
			cutOff := kind == "truncated" && res.Attempts == 1 && res.Last.Failures[evil.ID()] == nil
			if cutOff {
				t.Logf("truncated peer's span was taken over before the cut (%d good bytes from it)", res.Last.BytesByPeer[evil.ID()])
			}
			if kind != "endless" && !unused && !cutOff && !slow && sc.Failures <= 0 && !blamed && sc.BannedUntil.IsZero() {
				t.Fatalf("%s peer neither failed nor blamed: score %+v, blamed %v", kind, sc, res.Blamed)
			}
			if !client.Score(honest.ID()).BannedUntil.IsZero() {
				t.Fatal("honest peer banned")
			}
			t.Logf("%s peer: fetched in %v, %d attempts, blamed %v, evil failures %v, throughput %.0f B/s",
				kind, time.Since(start).Round(time.Millisecond), res.Attempts, res.Blamed, sc.Failures, sc.Throughput)
		})
	}
}
