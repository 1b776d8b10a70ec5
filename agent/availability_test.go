package agent

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p"
)

// TestCompleteSourcesDoNotWaitForAStuckPeer: a lock winner looking for a
// complete copy asks every provider at once; one that never answers (a
// loaded host) must not hold back the answer of one that has the blob.
// Before, the search waited for every answer, up to its 3 s timeout per
// round; under load a winner searched 6.5 s while the whole swarm waited.
func TestCompleteSourcesDoNotWaitForAStuckPeer(t *testing.T) {
	t.Parallel()
	holder := startAgent(t, "")
	asker := startPeers(t, 1, "", holder)[0]
	d := seedCache(t, holder, 1<<20)

	// A libp2p host that accepts blob streams and never answers.
	stuck, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release); stuck.Close() })
	stuck.SetStreamHandler(p2p.BlobProtocol, func(s network.Stream) {
		<-release
		s.Reset()
	})
	if err := asker.node.Host().Connect(t.Context(), peer.AddrInfo{ID: stuck.ID(), Addrs: stuck.Addrs()}); err != nil {
		t.Fatal(err)
	}
	provs := []peer.AddrInfo{
		{ID: stuck.ID(), Addrs: stuck.Addrs()},
		{ID: holder.node.ID(), Addrs: holder.node.Host().Addrs()},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	srcs := asker.fetch.Load().completeSources(ctx, d, provs, true)
	took := time.Since(start)
	if len(srcs) != 1 || srcs[0].ID != holder.node.ID() {
		t.Fatalf("complete sources %v, want only the holder %s", srcs, holder.node.ID())
	}
	// The stuck peer would have held the search for availabilityTimeout.
	if took >= availabilityTimeout {
		t.Fatalf("search took %v: it waited for the stuck peer (timeout %v)", took, availabilityTimeout)
	}
	t.Logf("found the holder in %v", took)
}
