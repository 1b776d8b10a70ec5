package p2p

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

var benchBlobMiB = flag.Int("p2p.blobmib", 256, "blob size in MiB for BenchmarkOneHop")

// discardAt is an io.WriterAt that drops everything, so benchmarks measure
// transport, not a destination.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// rawTCPCopy sends blob over a fresh loopback TCP connection and returns
// how long the receiver took to read it all: the baseline.
func rawTCPCopy(tb testing.TB, blob []byte) time.Duration {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, bytes.NewReader(blob))
		sent <- err
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	n, err := io.Copy(io.Discard, c)
	elapsed := time.Since(start)
	c.Close()
	if err != nil || n != int64(len(blob)) {
		tb.Fatalf("raw copy: %d bytes, %v", n, err)
	}
	if err := <-sent; err != nil {
		tb.Fatal(err)
	}
	return elapsed
}

// BenchmarkOneHop downloads one blob (-p2p.blobmib, default 256 MiB) from
// one peer over loopback, and in every iteration also copies the same
// bytes over a raw loopback TCP connection. It reports both rates and
// their ratio (p2p/raw; goal >= 0.5).
func BenchmarkOneHop(b *testing.B) {
	size := int64(*benchBlobMiB) << 20
	blob := randomBlob(42, int(size))
	d := digest.FromBytes(blob)
	const tcp, quic = "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"
	for _, tr := range []struct {
		name  string
		addrs []string
	}{
		{"tcp+quic", []string{tcp, quic}}, // as deployed: the dial ranker picks TCP
		{"tcp", []string{tcp}},
		{"quic", []string{quic}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.ListenAddrs = tr.addrs
			src := NewMemorySource()
			src.PutAs(d, blob)
			server := startNode(b, cfg, src)
			client := startNode(b, cfg, NewMemorySource())
			providers := []peer.AddrInfo{addrInfo(server)}
			if err := client.Host().Connect(b.Context(), providers[0]); err != nil {
				b.Fatal(err)
			}
			if conns := client.Host().Network().ConnsToPeer(server.ID()); len(conns) > 0 {
				b.Logf("transport: %s", conns[0].RemoteMultiaddr())
			}
			ctx := b.Context()
			var p2pTime, rawTime time.Duration
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if _, err := client.Download(ctx, d, size, providers, discardAt{}); err != nil {
					b.Fatal(err)
				}
				p2pTime += time.Since(start)
				b.StopTimer()
				rawTime += rawTCPCopy(b, blob)
				b.StartTimer()
			}
			n := float64(b.N)
			mib := float64(size) / (1 << 20)
			b.ReportMetric(mib*n/p2pTime.Seconds(), "p2p-MiB/s")
			b.ReportMetric(mib*n/rawTime.Seconds(), "raw-tcp-MiB/s")
			b.ReportMetric(rawTime.Seconds()/p2pTime.Seconds(), "ratio")
		})
	}
}

// BenchmarkFindProviders measures DHT lookups on a 20-node loopback fleet:
// 40 blobs, each announced by one random node, looked up by random other
// nodes, lookupsPerOp lookups per iteration (so -benchtime 1x still gives
// percentiles). It reports p50 and p99 latency of one lookup.
func BenchmarkFindProviders(b *testing.B) {
	cfg := DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	nodes := startFleet(b, 20, cfg)
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	type entry struct {
		d     digest.Digest
		owner int
	}
	var blobs []entry
	for i := range 40 {
		e := entry{d: digest.FromString(fmt.Sprint("blob-", i)), owner: rng.IntN(len(nodes))}
		if err := nodes[e.owner].Provide(ctx, e.d); err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, e)
	}
	var announced int64
	waitFor(b, time.Minute, "announcements", func() bool {
		announced = 0
		for _, n := range nodes {
			announced += n.Stats().Announcements
		}
		return announced >= int64(len(blobs))
	})

	const lookupsPerOp = 200
	var lat []time.Duration
	misses := 0
	for b.Loop() {
		for range lookupsPerOp {
			e := blobs[rng.IntN(len(blobs))]
			asker := rng.IntN(len(nodes) - 1)
			if asker >= e.owner {
				asker++
			}
			start := time.Now()
			provs, err := nodes[asker].FindProviders(ctx, e.d, 1)
			lat = append(lat, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if len(provs) != 1 || provs[0].ID != nodes[e.owner].ID() {
				misses++
			}
		}
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(misses), "misses")
}
