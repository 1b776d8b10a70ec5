package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// TestMocknetHosts runs nodes on hosts of libp2p's mock network (what the
// simulator does): the DHT, announcements and blob transfers work over it,
// and the link's bandwidth shapes the transfer.
func TestMocknetHosts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	const bandwidth = 4 << 20 // bytes per second
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: 5 * time.Millisecond, Bandwidth: bandwidth})

	blob := randomBlob(7, 1<<20)
	owner := NewMemorySource()
	d := owner.Put(blob)
	nodes := make([]*Node, 4)
	for i := range nodes {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatalf("GenPeer: %v", err)
		}
		cfg := testConfig()
		cfg.Host = h
		if i > 0 {
			cfg.Bootstrap = nodes[0].Addrs()
		}
		src := BlobSource(NewMemorySource())
		if i == 3 {
			src = owner
		}
		nodes[i] = startNode(t, cfg, src)
		if err := mn.LinkAll(); err != nil {
			t.Fatalf("LinkAll: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "routing tables filled", func() bool {
		for _, n := range nodes {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
	if err := nodes[3].Provide(ctx, d); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	provs, err := nodes[0].FindProviders(ctx, d, 3)
	if err != nil || len(provs) != 1 || provs[0].ID != nodes[3].ID() {
		t.Fatalf("FindProviders = %v, %v; want only %s", provs, err, nodes[3].ID())
	}
	// A mock link's token bucket fills up to a second of bandwidth while
	// idle (probes and DHT traffic come and go): empty it, so the transfer
	// is paced from its first byte.
	for _, l := range mn.LinksBetweenPeers(nodes[0].ID(), nodes[3].ID()) {
		l.SetOptions(l.Options())
	}
	dst := newMemFile(int64(len(blob)))
	start := time.Now()
	if _, err := nodes[0].Download(ctx, d, int64(len(blob)), provs, dst); err != nil {
		t.Fatalf("Download: %v", err)
	}
	took := time.Since(start)
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("downloaded bytes differ")
	}
	// 1 MiB over a 4 MiB/s link cannot arrive in much under 250ms.
	if took < 150*time.Millisecond {
		t.Errorf("1 MiB over a %d B/s link took %v: bandwidth not applied", bandwidth, took)
	}
}
