package p2p

import (
	"github.com/libp2p/go-libp2p/core/peer"
)

// Stats are counters the agent exports as metrics.
type Stats struct {
	// BytesServed is the number of blob bytes sent to peers.
	BytesServed int64
	// Uploads is the number of blob responses being sent right now.
	Uploads int64
	// BytesFetched is the number of blob bytes received, per peer.
	BytesFetched map[peer.ID]int64
	// ProvidedBlobs is the number of blobs currently announced.
	ProvidedBlobs int
	// Announcements counts successful DHT provide operations.
	Announcements int64
	// AnnounceFailures counts failed DHT provide operations.
	AnnounceFailures int64
	// Reprovided counts blobs announced by scheduled reprovides.
	Reprovided uint64
	// LastReprovideBatch is the size of the last reprovide batch.
	LastReprovideBatch uint64
	// RoutingTablePeers is the DHT routing table's size.
	RoutingTablePeers int
	// Probes counts peer measurements (a ping, with or without a test
	// download), scheduled and on demand.
	Probes int64
	// ProbeBytes counts test download bytes received by probes.
	ProbeBytes int64
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	rs, _ := n.prov.Stat() // never fails for the batch provider
	n.mu.Lock()
	defer n.mu.Unlock()
	fetched := make(map[peer.ID]int64, len(n.fetched))
	for p, b := range n.fetched {
		fetched[p] = b
	}
	return Stats{
		BytesServed:        n.served.Load(),
		BytesFetched:       fetched,
		ProvidedBlobs:      len(n.keys),
		Announcements:      n.announced.Load(),
		AnnounceFailures:   n.announceErr.Load(),
		Reprovided:         rs.TotalReprovides,
		LastReprovideBatch: rs.LastReprovideBatchSize,
		RoutingTablePeers:  n.dht.RoutingTable().Size(),
		Probes:             n.probes.Load(),
		ProbeBytes:         n.probeBytes.Load(),
	}
}
