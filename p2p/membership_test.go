package p2p

import (
	"context"
	"testing"
	"time"
)

// TestSwarmKeyRefusedBothSides: with a swarm key, a node without it (or
// with another key) that bootstraps from a member neither joins the DHT
// nor fetches a blob. Asserted on both sides: the outsider's routing table
// stays empty and its Stat fails; the member has no connection to it and
// does not list it in its routing table, while a keyed node bootstrapping
// the same way joins and fetches.
func TestSwarmKeyRefusedBothSides(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key := writeSwarmKey(t, 1)
	withKey := func(path string) Config {
		cfg := testConfig()
		cfg.SwarmKeyFile = path
		return cfg
	}
	src := NewMemorySource()
	d := src.Put(randomBlob(9, 64<<10))
	member := startNode(t, withKey(key), src)

	insiderCfg := withKey(key)
	insiderCfg.Bootstrap = member.Addrs()
	insider := startNode(t, insiderCfg, NewMemorySource())
	waitFor(t, 10*time.Second, "the keyed node to join the DHT", insider.Ready)
	if _, err := insider.Stat(ctx, member.ID(), d); err != nil {
		t.Fatalf("keyed node cannot fetch: %v", err)
	}

	for name, cfg := range map[string]Config{"no key": testConfig(), "other key": withKey(writeSwarmKey(t, 2))} {
		cfg.Bootstrap = member.Addrs()
		out := startNode(t, cfg, NewMemorySource())
		time.Sleep(time.Second) // bootstrap attempts run in Run: let them fail
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := out.Stat(sctx, member.ID(), d)
		scancel()
		if err == nil {
			t.Errorf("%s: fetched from a member", name)
		}
		if out.Ready() {
			t.Errorf("%s: joined the DHT (routing table not empty)", name)
		}
		if n := len(member.Host().Network().ConnsToPeer(out.ID())); n != 0 {
			t.Errorf("%s: the member holds %d connections to it", name, n)
		}
		for _, p := range member.dht.RoutingTable().ListPeers() {
			if p == out.ID() {
				t.Errorf("%s: in the member's routing table", name)
			}
		}
		if _, err := out.FindProviders(ctx, d, 1); err == nil {
			if provs, _ := out.FindProviders(ctx, d, 1); len(provs) > 0 {
				t.Errorf("%s: found providers through the DHT", name)
			}
		}
	}
}
