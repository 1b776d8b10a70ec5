package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPullSourcesRecords: each fetch is recorded with its bytes by source
// and its top peers, the ring keeps the newest recentFetches, bytes of a
// digest go to its newest running fetch, and the metrics classify fetches.
func TestPullSourcesRecords(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_700_000_000, 0)
	p := newPullSources(func() time.Time { return clock })
	tick := func() { clock = clock.Add(time.Second) }
	dg := func(i int) digest.Digest { return digest.FromString(fmt.Sprint(i)) }
	ids := []peer.ID{"peer-a", "peer-b", "peer-c", "peer-d", "peer-e"}

	// A fetch from peers only: five peers, the four that sent most listed.
	r := p.begin(dg(0), 150)
	tick()
	p.fromPeers(dg(0), map[peer.ID]int64{ids[0]: 11, ids[1]: 50, ids[2]: 29})
	p.fromPeers(dg(0), map[peer.ID]int64{ids[1]: 10, ids[3]: 20, ids[4]: 30})
	if got := p.list(); len(got) != 1 || got[0].Result != "running" || got[0].PeerBytes != 150 || got[0].Seconds != 1 {
		t.Fatalf("while running: %+v", got)
	}
	p.end(r, true)
	got := p.list()[0]
	want := []PeerBytes{{ID: ids[1].String(), Bytes: 60}, {ID: ids[4].String(), Bytes: 30}, {ID: ids[2].String(), Bytes: 29}, {ID: ids[3].String(), Bytes: 20}}
	if got.Result != "ok" || got.OriginBytes != 0 || got.PeerBytes != 150 || fmt.Sprint(got.Peers) != fmt.Sprint(want) {
		t.Fatalf("peer fetch: %+v, want peers %v", got, want)
	}

	// A fetch from the origin, and a mixed one.
	r = p.begin(dg(1), 100)
	p.fromOrigin(dg(1), 60)
	p.fromOrigin(dg(1), 40)
	p.end(r, true)
	r = p.begin(dg(2), 100)
	p.fromPeers(dg(2), map[peer.ID]int64{ids[0]: 75})
	p.fromOrigin(dg(2), 25)
	p.end(r, true)
	// A failed fetch, and one whose successor started before it returned.
	r = p.begin(dg(3), 100)
	p.fromPeers(dg(3), map[peer.ID]int64{ids[0]: 5})
	next := p.begin(dg(3), 100)
	p.fromOrigin(dg(3), 100) // the newer fetch's bytes
	p.end(r, false)
	p.end(next, true)
	got = p.list()[1] // newest first: next, then r
	if got.Result != "failed" || got.PeerBytes != 5 || got.OriginBytes != 0 {
		t.Fatalf("failed fetch: %+v", got)
	}
	if got := p.list()[0]; got.Result != "ok" || got.OriginBytes != 100 || got.PeerBytes != 0 {
		t.Fatalf("the fetch that took over: %+v", got)
	}
	for source, want := range map[string]float64{"peers": 1, "origin": 2, "mixed": 1} {
		if got := testutil.ToFloat64(p.fetches.WithLabelValues(source)); got != want {
			t.Errorf("shoal_fetches_total{source=%q} = %v, want %v", source, got, want)
		}
	}
	if got := testutil.ToFloat64(p.failures); got != 1 {
		t.Errorf("shoal_fetch_failures_total = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(p.fraction); n != 1 {
		t.Errorf("fraction histogram series: %d", n)
	}

	// The ring keeps the newest recentFetches, newest first.
	for i := 10; i < 10+recentFetches+5; i++ {
		tick()
		p.end(p.begin(dg(i), 1), true)
	}
	list := p.list()
	if len(list) != recentFetches {
		t.Fatalf("%d fetches listed, want %d", len(list), recentFetches)
	}
	for i, f := range list {
		if want := dg(10 + recentFetches + 4 - i).String(); f.Digest != want {
			t.Fatalf("list[%d] = %s, want %s", i, f.Digest, want)
		}
	}
	if len(p.running) != 0 {
		t.Fatalf("running fetches left: %v", p.running)
	}
}

// TestPullSourcesNil: an agent without a record (nil) records nothing.
func TestPullSourcesNil(t *testing.T) {
	t.Parallel()
	var p *pullSources
	r := p.begin(digest.FromString("x"), 1)
	p.fromOrigin(digest.FromString("x"), 1)
	p.fromPeers(digest.FromString("x"), map[peer.ID]int64{"a": 1})
	p.end(r, true)
	if got := p.list(); got != nil {
		t.Fatalf("nil record lists %v", got)
	}
}

// TestStatusFetchSources: after a first pull that reads the origin and a
// second agent's pull that copies from the first, each agent's /status and
// metrics say where the bytes came from.
func TestStatusFetchSources(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	origin, blob, d := originWithBlob(t, 1010, 24<<20)
	fleet := startSerfFleet(t, origin, []string{"a", "a"})
	a, b := fleet[0], fleet[1]
	size := int64(len(blob))

	if got := getWithRetry(t, a, "/v2/sources/repo/blobs/"+d.String(), 1); !bytes.Equal(got, blob) {
		t.Fatal("first pull: wrong bytes")
	}
	waitFetchEnded(t, a)
	fs := a.status().Fetches
	if len(fs) != 1 || fs[0].Digest != d.String() || fs[0].Result != "ok" || fs[0].Size != size ||
		fs[0].OriginBytes != size || fs[0].PeerBytes != 0 || len(fs[0].Peers) != 0 {
		t.Fatalf("first pull's status: %+v, want %d bytes from the origin", fs, size)
	}
	for series, want := range map[string]float64{
		`shoal_fetches_total{source="origin"}`: 1, `shoal_fetches_total{source="peers"}`: 0,
		`shoal_fetch_peer_fraction_count`: 1, `shoal_fetch_peer_fraction_sum`: 0,
	} {
		if got := a.metric(t, series); got != want {
			t.Errorf("first pull: %s = %v, want %v", series, got, want)
		}
	}

	waitFor(t, "provider record", 20*time.Second, func() bool {
		provs, _ := b.node.FindProviders(t.Context(), d, 1)
		return len(provs) > 0
	})
	if got := getWithRetry(t, b, "/v2/sources/repo/blobs/"+d.String(), 1); !bytes.Equal(got, blob) {
		t.Fatal("second pull: wrong bytes")
	}
	waitFetchEnded(t, b)
	fs = b.status().Fetches
	if len(fs) != 1 || fs[0].Result != "ok" || fs[0].OriginBytes != 0 || fs[0].PeerBytes != size || len(fs[0].Peers) != 1 {
		t.Fatalf("second pull's status: %+v, want %d bytes from one peer", fs, size)
	}
	if p := fs[0].Peers[0]; p.ID != a.node.ID().String() || p.Node != a.cfg.NodeName || p.Bytes != size {
		t.Fatalf("second pull's peer: %+v, want %s (%s) with %d bytes", p, a.node.ID(), a.cfg.NodeName, size)
	}
	for series, want := range map[string]float64{
		`shoal_fetches_total{source="peers"}`: 1, `shoal_fetches_total{source="origin"}`: 0,
		`shoal_fetches_total{source="mixed"}`: 0, `shoal_fetch_peer_fraction_bucket{le="0.99"}`: 0,
		`shoal_fetch_peer_fraction_count`: 1, `shoal_fetch_peer_fraction_sum`: 1,
	} {
		if got := b.metric(t, series); got != want {
			t.Errorf("second pull: %s = %v, want %v", series, got, want)
		}
	}
	// The admin API serves the same document.
	resp, err := http.Get("http://" + b.AdminAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc Status
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Fetches) != 1 || doc.Fetches[0].PeerBytes != size || doc.Fetches[0].Peers[0].Node != a.cfg.NodeName {
		t.Fatalf("GET /status recent_fetches: %+v", doc.Fetches)
	}
}

// waitFetchEnded waits until a's status lists no running fetch: a client's
// response ends when the bytes are verified, the fetch when they are
// committed, a moment later.
func waitFetchEnded(t *testing.T, a *testAgent) {
	t.Helper()
	waitFor(t, "fetch to end", 30*time.Second, func() bool {
		for _, f := range a.status().Fetches {
			if f.Result == "running" {
				return false
			}
		}
		return true
	})
}
