package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// streamWindow is the yamux receive window granted to every stream up
// front. yamux starts at 256 KiB and only doubles it when the reader drains
// a window within four RTTs; a downloader that hashes and writes to disk
// between reads rarely does on a low-RTT network, and 256 KiB per round
// trip caps a stream far below the link rate.
const streamWindow = 16 << 20

func yamuxTransport() *libp2pyamux.Transport {
	t := *libp2pyamux.DefaultTransport
	t.InitialStreamWindowSize = streamWindow
	t.MaxStreamWindowSize = max(t.MaxStreamWindowSize, streamWindow)
	return &t
}

// quicFallbackDelay is how long QUIC dials wait behind TCP dials.
const quicFallbackDelay = 250 * time.Millisecond

// preferTCP ranks dials like go-libp2p's default ranker but with TCP
// first and QUIC as the fallback. The default prefers QUIC, which in Go
// moves bulk data at a third of TCP's rate on the same host (see
// BenchmarkOneHop); our peers are data-centre hosts moving large blobs.
func preferTCP(addrs []ma.Multiaddr) []network.AddrDelay {
	ranked := swarm.DefaultDialRanker(addrs)
	isTCP := func(a ma.Multiaddr) bool {
		_, err := a.ValueForProtocol(ma.P_TCP)
		return err == nil
	}
	first := time.Duration(-1)
	for _, r := range ranked {
		if isTCP(r.Addr) && (first < 0 || r.Delay < first) {
			first = r.Delay
		}
	}
	if first < 0 {
		return ranked
	}
	for i, r := range ranked {
		if isTCP(r.Addr) {
			ranked[i].Delay = r.Delay - first
		} else {
			ranked[i].Delay = r.Delay + quicFallbackDelay
		}
	}
	return ranked
}
