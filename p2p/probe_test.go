package p2p

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// shapedFleet starts count nodes on one mock network whose links have
// latency and bandwidth bw, connects them all, and returns them with the
// network. srcs[i], if set, serves node i.
func shapedFleet(t *testing.T, count int, cfg Config, latency time.Duration, bw float64, srcs ...BlobSource) ([]*Node, mocknet.Mocknet) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency, Bandwidth: bw})
	hosts := make([]host.Host, count)
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatalf("GenPeer: %v", err)
		}
		hosts[i] = h
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatalf("LinkAll: %v", err)
	}
	nodes := make([]*Node, count)
	for i := range nodes {
		c := cfg
		c.Host = hosts[i]
		src := BlobSource(NewMemorySource())
		if i < len(srcs) && srcs[i] != nil {
			src = srcs[i]
		}
		nodes[i] = startNode(t, c, src)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatalf("ConnectAllButSelf: %v", err)
	}
	return nodes, mn
}

// shape sets the options of every link between a and b.
func shape(t *testing.T, mn mocknet.Mocknet, a, b peer.ID, o mocknet.LinkOptions) {
	t.Helper()
	links := mn.LinksBetweenPeers(a, b)
	if len(links) == 0 {
		t.Fatalf("no link between %s and %s", a, b)
	}
	for _, l := range links {
		l.SetOptions(o)
	}
}

// TestScoredPullAvoidsSlowProvider (issue #5, acceptance 2): over shaped
// mock links, one provider ten times slower than the other three delivers
// under 15% of a pull's bytes, and the pull takes at most 1.3 times as
// long as the same pull without the slow provider.
//
// It measures wall time, so it does not run in parallel with other tests.
func TestScoredPullAvoidsSlowProvider(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const (
		latency = 5 * time.Millisecond
		fastBW  = 2 << 20 // bytes per second
		slowBW  = fastBW / 10
	)
	cfg := testConfig()
	cfg.Download.ChunkSize = 128 << 10
	cfg.Download.MaxRun = 4
	cfg.Probe.Interval = time.Minute // one round of probes, then quiet links
	cfg.Probe.Bytes = 256 << 10
	cfg.Probe.Rate = 20
	cfg.Probe.ByteRate = 8 << 20

	blob := randomBlob(11, 4<<20)
	srcs := []BlobSource{NewMemorySource()}
	for range 4 {
		m := NewMemorySource()
		m.Put(blob)
		srcs = append(srcs, m)
	}
	d := srcs[1].(*MemorySource).Put(blob)
	nodes, mn := shapedFleet(t, 5, cfg, latency, fastBW, srcs...)
	client, slow := nodes[0], nodes[4]
	for _, n := range nodes[:4] {
		shape(t, mn, slow.ID(), n.ID(), mocknet.LinkOptions{Latency: latency, Bandwidth: slowBW})
	}
	waitFor(t, 20*time.Second, "the client's probes of every provider", func() bool {
		for _, n := range nodes[1:] {
			if client.Score(n.ID()).Measured.IsZero() {
				return false
			}
		}
		return true
	})
	for _, n := range nodes[1:] {
		sc := client.Score(n.ID())
		t.Logf("probed %s: rtt %v, throughput %.0f B/s", n.ID().ShortString(), sc.RTT, sc.Throughput)
	}

	pull := func(providers []*Node, swarm bool) (map[peer.ID]int64, int64, time.Duration) {
		t.Helper()
		// A mock link's token bucket fills up to a second of bandwidth
		// while idle; start every timed pull from empty buckets.
		for _, p := range providers {
			bw := float64(fastBW)
			if p == slow {
				bw = slowBW
			}
			shape(t, mn, client.ID(), p.ID(), mocknet.LinkOptions{Latency: latency, Bandwidth: bw})
		}
		var ais []peer.AddrInfo
		for _, p := range providers {
			ais = append(ais, addrInfo(p))
		}
		dst := newMemFile(int64(len(blob)))
		start := time.Now()
		var byPeer map[peer.ID]int64
		var total int64
		var err error
		if swarm {
			var st SwarmStats
			st, err = client.Swarm(ctx, d, int64(len(blob)), ais, dst, SwarmOptions{ChunkSize: 128 << 10})
			byPeer, total = st.BytesByPeer, st.Bytes
		} else {
			var st DownloadStats
			st, err = client.Download(ctx, d, int64(len(blob)), ais, dst)
			byPeer, total = st.BytesByPeer, st.Bytes
		}
		took := time.Since(start)
		if err != nil {
			t.Fatalf("download (swarm %v): %v", swarm, err)
		}
		if !bytes.Equal(dst.Bytes(), blob) {
			t.Fatal("downloaded bytes differ")
		}
		return byPeer, total, took
	}
	// Two rounds, alternating, so that a burst of load on the machine
	// does not decide the comparison. The slow provider is listed first:
	// the order of the list must not matter. Both the scored multi-source
	// download and the swarm (the agent's first choice) are held to it.
	// A comparison whose time ratio fails is measured once more, after the
	// providers are probed again: under the race detector on a loaded
	// 2-core runner (CI, and the session-4 code as well) one transfer that
	// the machine stalled can mark a fast provider slow, and with probes a
	// minute apart here nothing measures it again, so the swarm leaves it
	// idle for the rest of the test. A real regression fails both.
	for _, swarm := range []bool{false, true} {
		for attempt := 1; ; attempt++ {
			if compareSlowProvider(t, pull, swarm, slow, nodes, attempt == 2) {
				break
			}
			t.Logf("swarm %v: time ratio above 1.3 on attempt %d; probing the providers and measuring again", swarm, attempt)
			for range 3 {
				for _, n := range nodes[1:] {
					if _, err := client.Probe(ctx, n.ID(), cfg.Probe.Bytes); err != nil {
						t.Logf("probe %s: %v", n.ID().ShortString(), err)
					}
				}
			}
		}
	}
}

// compareSlowProvider runs TestScoredPullAvoidsSlowProvider's comparison
// for one download method. It reports whether the time ratio held; a
// share or, when final, a ratio out of bounds is an error.
func compareSlowProvider(t *testing.T, pull func([]*Node, bool) (map[peer.ID]int64, int64, time.Duration), swarm bool, slow *Node, nodes []*Node, final bool) bool {
	t.Helper()
	var (
		slowBytes, allBytes int64
		tWith, tWithout     time.Duration
	)
	for range 2 {
		byPeer, total, took := pull([]*Node{slow, nodes[1], nodes[2], nodes[3]}, swarm)
		slowBytes += byPeer[slow.ID()]
		allBytes += total
		tWith += took
		t.Logf("swarm %v, with the slow provider: %v, bytes by peer %v", swarm, took, byPeer)
		byPeer, _, took = pull([]*Node{nodes[1], nodes[2], nodes[3]}, swarm)
		tWithout += took
		t.Logf("swarm %v, without: %v, bytes by peer %v", swarm, took, byPeer)
	}
	share := float64(slowBytes) / float64(allBytes)
	ratio := tWith.Seconds() / tWithout.Seconds()
	t.Logf("swarm %v: slow provider %s sent %d of %d bytes (%.1f%%); pulls took %v with it, %v without (ratio %.2f)",
		swarm, slow.ID().ShortString(), slowBytes, allBytes, 100*share, tWith, tWithout, ratio)
	if share >= 0.15 {
		t.Errorf("swarm %v: slow provider delivered %.1f%% of the bytes, want under 15%%", swarm, 100*share)
	}
	if ratio > 1.3 {
		if final {
			t.Errorf("swarm %v: pull took %v with the slow provider, %v without: ratio %.2f, want at most 1.3", swarm, tWith, tWithout, ratio)
		}
		return final
	}
	return true
}

// TestProbeBudgetIdleFleet (issue #5, acceptance 3): on a 50-node mock
// fleet, all connected and idle, with a probe interval so short that every
// node would like to probe its 49 peers ten times a second, each node
// stays within its budget of probes and test bytes per second (counted by
// Stats, which feeds shoal_probe_bytes_total), and still probes.
//
// Not parallel: 50 nodes keep both cores busy, which would distort the
// timing of tests running alongside.
func TestProbeBudgetIdleFleet(t *testing.T) {
	const (
		count   = 50
		idle    = 3 * time.Second
		rate    = 5        // probes per second
		byteBW  = 64 << 10 // test bytes per second
		probeSz = 16 << 10
		burst   = 1.0 // seconds of budget
	)
	cfg := testConfig()
	cfg.Probe.Interval = 100 * time.Millisecond
	cfg.Probe.Rate = rate
	cfg.Probe.ByteRate = byteBW
	cfg.Probe.Bytes = probeSz
	cfg.Probe.Burst = burst
	nodes, _ := shapedFleet(t, count, cfg, time.Millisecond, 0)
	// Measure a window of idling: within it a node can start at most the
	// budget of the window plus one burst of probes (its bucket may be
	// full at the start). Probes are counted when they start, bytes when
	// they arrive: bytes reserved before the window may arrive in it, up to
	// one test download per concurrent probe.
	before := make([]Stats, count)
	beforeAt := make([]time.Time, count)
	for i, n := range nodes {
		beforeAt[i] = time.Now()
		before[i] = n.Stats()
	}
	time.Sleep(idle)

	var (
		probes, probeBytes  int64
		busiest, busiestB   int64
		elapsed             float64 // summed over nodes
		maxProbes, maxBytes float64 // of the busiest window
	)
	for i, n := range nodes {
		// Each node's window runs from just before its first reading to
		// just after its second.
		st := n.Stats()
		window := time.Since(beforeAt[i]).Seconds()
		capProbes := rate*burst + rate*window
		capBytes := byteBW*burst + byteBW*window + float64(cfg.Probe.Concurrency*probeSz)
		dp, db := st.Probes-before[i].Probes, st.ProbeBytes-before[i].ProbeBytes
		probes += dp
		probeBytes += db
		elapsed += window
		if dp > busiest {
			busiest, maxProbes = dp, capProbes
		}
		if db > busiestB {
			busiestB, maxBytes = db, capBytes
		}
		if float64(dp) > capProbes {
			t.Errorf("node %s made %d probes in %.2fs, budget %.0f", n.ID().ShortString(), dp, window, capProbes)
		}
		if float64(db) > capBytes {
			t.Errorf("node %s received %d probe bytes in %.2fs, budget %.0f", n.ID().ShortString(), db, window, capBytes)
		}
	}
	elapsed /= count // mean window
	perNode := float64(probes) / count / elapsed
	perNodeBytes := float64(probeBytes) / count / elapsed
	t.Logf("%d nodes idle %.2fs: %.2f probes/s and %.0f probe B/s per node (budget %d/s and %d B/s, burst %.0fs); busiest node %d probes (cap %.0f), %d bytes (cap %.0f)",
		count, elapsed, perNode, perNodeBytes, rate, byteBW, burst, busiest, maxProbes, busiestB, maxBytes)
	// The budget must be used, not just respected: demand is far above it.
	// The binding limit is the byte rate (ByteRate/Bytes = 4 probes/s, under
	// Rate). A quarter of it is the floor: 50 nodes under the race detector
	// on a loaded 2-core runner measured half of it (CI, 5.6 s window for a
	// 3 s sleep); a scheduler that stops probing is far below a quarter.
	effective := math.Min(rate, float64(byteBW)/probeSz)
	if want := 0.25 * count * effective * elapsed; float64(probes) < want {
		t.Errorf("fleet made %d probes in %.1fs, want at least a quarter of the effective budget (%.0f)", probes, elapsed, want)
	}
	if probeBytes == 0 {
		t.Error("no test bytes were downloaded")
	}
}

// TestDownloadScoredMovesStalledRange: under the scored policy a peer
// that stops sending loses its range to the idle healthy peer as soon as
// it falls behind its expected time, long before the stall watchdog.
func TestDownloadScoredMovesStalledRange(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Download.StallTimeout = 20 * time.Second
	blob := randomBlob(12, 1<<20)
	slow := stallSource{MemorySource: NewMemorySource(), after: 10 << 10}
	d := slow.Put(blob)
	fine := NewMemorySource()
	fine.Put(blob)
	client := startNode(t, cfg, NewMemorySource())
	s, f := startNode(t, cfg, slow), startNode(t, cfg, fine)

	dst := newMemFile(int64(len(blob)))
	start := time.Now()
	st, err := client.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(s), addrInfo(f)}, dst)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("downloaded bytes differ")
	}
	if took > cfg.Download.StallTimeout/4 {
		t.Fatalf("download took %v: the stalled range waited for the watchdog (%v)", took, cfg.Download.StallTimeout)
	}
	for i, c := range st.Chunks {
		if c.Peer != f.ID() {
			t.Fatalf("chunk %d from %s, want every chunk from the healthy peer", i, c.Peer)
		}
	}
	if ss, fs := client.Score(s.ID()).Throughput, client.Score(f.ID()).Throughput; ss >= fs {
		t.Fatalf("stalled peer scores %.0f B/s against the healthy one's %.0f B/s: want less", ss, fs)
	}
	t.Logf("stalled range moved: download took %v", took)
}

// TestOnDemandProbes: before a download of at least OnDemandSize, the
// candidates without a fresh measurement are probed (RTT and throughput),
// once: a second download right after finds them fresh.
func TestOnDemandProbes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Probe.Interval = 0 // no scheduled probes
	cfg.Probe.OnDemandSize = 256 << 10
	cfg.Probe.Bytes = 64 << 10
	blob := randomBlob(13, 512<<10)
	srcs := []BlobSource{NewMemorySource()}
	var d = NewMemorySource().Put(blob)
	for range 2 {
		m := NewMemorySource()
		m.Put(blob)
		srcs = append(srcs, m)
	}
	nodes, _ := shapedFleet(t, 3, cfg, 2*time.Millisecond, 8<<20, srcs...)
	client := nodes[0]
	providers := []peer.AddrInfo{addrInfo(nodes[1]), addrInfo(nodes[2])}
	for range 2 {
		dst := newMemFile(int64(len(blob)))
		if _, err := client.Download(ctx, d, int64(len(blob)), providers, dst); err != nil {
			t.Fatalf("Download: %v", err)
		}
		if !bytes.Equal(dst.Bytes(), blob) {
			t.Fatal("downloaded bytes differ")
		}
	}
	st := client.Stats()
	if st.Probes != 2 || st.ProbeBytes != 2*cfg.Probe.Bytes {
		t.Fatalf("Probes = %d, ProbeBytes = %d; want one probe of %d bytes per provider", st.Probes, st.ProbeBytes, cfg.Probe.Bytes)
	}
	for _, p := range nodes[1:] {
		sc := client.Score(p.ID())
		if sc.RTT <= 0 || sc.Probed.IsZero() || sc.Wanted.IsZero() {
			t.Fatalf("provider %s after on-demand probes: %+v", p.ID().ShortString(), sc)
		}
	}
	peers := client.Peers(0)
	if len(peers) != 2 || peers[0].Expected <= 0 || peers[0].Expected > peers[1].Expected {
		t.Fatalf("Peers = %+v, want both providers, best first", peers)
	}
}
