package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// startGaterNode runs a p2p node on loopback TCP until the test ends.
func startGaterNode(t *testing.T, src p2p.BlobSource, gater *memberGater) *p2p.Node {
	t.Helper()
	cfg := p2p.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	if gater != nil {
		cfg.ConnectionGater = gater
	}
	n, err := p2p.New(t.Context(), cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// TestReliabilityMemberGater: a node whose gater follows serf membership
// serves a member, and refuses a stranger and a member that failed, in
// both directions. Asserted on both sides: the refused peer cannot stat a
// blob, and the gated node holds no connection to it. Before the
// membership is known only bootstrap peers are admitted.
func TestReliabilityMemberGater(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	src := p2p.NewMemorySource()
	d := src.Put([]byte("fleet-only blob"))
	friend := startGaterNode(t, p2p.NewMemorySource(), nil)
	stranger := startGaterNode(t, p2p.NewMemorySource(), nil)
	departed := startGaterNode(t, p2p.NewMemorySource(), nil)
	boot := startGaterNode(t, p2p.NewMemorySource(), nil)

	g := newMemberGater([]string{boot.Addrs()[0]}, slog.New(slog.DiscardHandler))
	gated := startGaterNode(t, src, g)
	addr := gated.Addrs()[0]

	reaches := func(n *p2p.Node) bool {
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		defer scancel()
		_ = n.Connect(sctx, addr) // the dialer may finish its handshake before the gater's side closes
		size, err := n.Stat(sctx, gated.ID(), d)
		return err == nil && size == int64(len("fleet-only blob"))
	}
	connected := func(n *p2p.Node) bool {
		return gated.Host().Network().Connectedness(n.ID()) == network.Connected
	}

	// No membership yet: only the bootstrap peer.
	if !reaches(boot) {
		t.Fatal("bootstrap peer refused before the membership is known")
	}
	if reaches(friend) {
		t.Fatal("a peer was admitted before the membership is known")
	}

	g.use(func() []locks.Member {
		return []locks.Member{
			{Name: "friend", PeerID: friend.ID().String(), Status: locks.StatusAlive},
			{Name: "departed", PeerID: departed.ID().String(), Status: locks.StatusFailed},
		}
	})
	if !reaches(friend) || !connected(friend) {
		t.Fatal("alive member refused")
	}
	for name, n := range map[string]*p2p.Node{"stranger": stranger, "failed member": departed} {
		if reaches(n) {
			t.Errorf("%s reached the blob server", name)
		}
		time.Sleep(100 * time.Millisecond)
		if connected(n) {
			t.Errorf("gated node holds a connection to the %s", name)
		}
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		if err := gated.Connect(dctx, n.Addrs()[0]); err == nil {
			t.Errorf("gated node dialled the %s", name)
		}
		dcancel()
	}
}
