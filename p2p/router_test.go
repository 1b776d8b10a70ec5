package p2p

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// testRouter is the conformance suite every Router passes. routers are
// the nodes of one fleet (at least four), pids their peer IDs. settle
// waits until announcements made so far are visible (the DHT announces
// in the background).
func testRouter(t *testing.T, routers []Router, pids []peer.ID, settle func(d digest.Digest, want int)) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if len(routers) < 4 {
		t.Fatal("conformance needs four routers")
	}
	for i, r := range routers {
		if !r.Ready() {
			t.Fatalf("router %d not ready", i)
		}
	}

	t.Run("absent digest", func(t *testing.T) {
		provs, err := routers[0].FindProviders(ctx, digest.FromString("absent"), 3)
		if err != nil || len(provs) != 0 {
			t.Fatalf("FindProviders = %v, %v; want none", provs, err)
		}
	})
	t.Run("invalid digest", func(t *testing.T) {
		if err := routers[0].Provide(ctx, "sha256:zz"); err == nil {
			t.Error("Provide accepted an invalid digest")
		}
		if _, err := routers[0].FindProviders(ctx, "md5:abc", 1); err == nil {
			t.Error("FindProviders accepted an invalid digest")
		}
	})
	t.Run("providers found, self excluded, limit kept", func(t *testing.T) {
		d := digest.FromString(fmt.Sprint("shared-", time.Now().UnixNano()))
		for _, r := range routers[1:4] {
			if err := r.Provide(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		settle(d, 3)
		var got []peer.ID
		waitFor(t, 10*time.Second, "three providers", func() bool {
			provs, err := routers[0].FindProviders(ctx, d, 3)
			if err != nil {
				t.Fatal(err)
			}
			got = ids(provs)
			return len(got) == 3
		})
		slices.Sort(got)
		want := slices.Clone(pids[1:4])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("providers %v, want %v", got, want)
		}
		provs, err := routers[1].FindProviders(ctx, d, 5)
		if err != nil || len(provs) == 0 || slices.Contains(ids(provs), pids[1]) {
			t.Fatalf("provider's own lookup = %v, %v; want the others, not itself", ids(provs), err)
		}
		provs, err = routers[0].FindProviders(ctx, d, 2)
		if err != nil || len(provs) != 2 {
			t.Fatalf("FindProviders(limit 2) = %v, %v", ids(provs), err)
		}
		if provs, err := routers[0].FindProviders(ctx, d, 0); err != nil || len(provs) != 0 {
			t.Fatalf("FindProviders(limit 0) = %v, %v", ids(provs), err)
		}
	})
}

func TestMemoryRouterConformance(t *testing.T) {
	t.Parallel()
	table := NewMemoryRouting()
	var routers []Router
	var pids []peer.ID
	for i := range 4 {
		id := peer.ID(fmt.Sprint("peer-", i))
		routers = append(routers, table.Router(peer.AddrInfo{ID: id}))
		pids = append(pids, id)
	}
	testRouter(t, routers, pids, func(digest.Digest, int) {})

	d := digest.FromString("withdrawn")
	r := routers[1]
	if err := r.Provide(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	r.Withdraw(d)
	if provs, _ := routers[0].FindProviders(t.Context(), d, 1); len(provs) != 0 {
		t.Fatalf("withdrawn provider still found: %v", provs)
	}
}

func TestNodeRouterConformance(t *testing.T) {
	t.Parallel()
	nodes := startFleet(t, 4, testConfig())
	var routers []Router
	var pids []peer.ID
	for _, n := range nodes {
		routers = append(routers, n)
		pids = append(pids, n.ID())
	}
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i] = n.Stats().Announcements
	}
	testRouter(t, routers, pids, func(_ digest.Digest, want int) {
		waitFor(t, 10*time.Second, "announcements", func() bool {
			var got int64
			for i, n := range nodes {
				got += n.Stats().Announcements - before[i]
			}
			return got >= int64(want)
		})
	})
}
