package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/locks"
)

// keyringFile writes a one-key serf keyring.
func keyringFile(t *testing.T, b byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "serf.keyring")
	k, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))})
	if err := os.WriteFile(path, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// memberNames lists the members a sees alive.
func memberNames(a *testAgent) []string {
	var out []string
	for _, m := range a.cluster.Members() {
		if m.Status == locks.StatusAlive {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestReliabilityKeyringFleet: two agents share a serf keyring; a third
// with another key tries to join through serf and to bootstrap the DHT
// from a member's libp2p address. It is refused on both layers and both
// sides: the members do not list it and it lists only itself; its DHT
// routing table stays empty and the members hold no connection to it
// (the connection gater admits serf members only); a pull of a blob that
// only the members have answers 404 on it, while the second member pulls
// the blob from the first.
func TestReliabilityKeyringFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	key := keyringFile(t, 1)
	a := startAgent(t, "", func(c *config.Config) { c.NodeName, c.Serf.KeyringFile = "member-a", key })
	b := startAgent(t, "", func(c *config.Config) {
		c.NodeName, c.Serf.KeyringFile = "member-b", key
		c.Serf.Join = []string{a.cluster.Self().Addr}
	})
	waitFor(t, "keyed members to join and connect", 30*time.Second, func() bool {
		return slices.Equal(memberNames(a), []string{"member-a", "member-b"}) &&
			a.node.Stats().RoutingTablePeers > 0 && b.node.Stats().RoutingTablePeers > 0
	})
	blob, d := randomBlob(90, 1<<20)
	pushReplicated(t, a, "keyring/repo", blob, d) // into a's own object store only

	x := startAgent(t, "", func(c *config.Config) {
		c.NodeName, c.Serf.KeyringFile = "outsider", keyringFile(t, 2)
		c.Serf.Join = []string{a.cluster.Self().Addr}
		c.P2P.Bootstrap = []string{tcpAddr(t, a)}
	})
	time.Sleep(2 * time.Second) // serf join retries and DHT bootstrap run meanwhile

	if got := memberNames(a); slices.Contains(got, "outsider") {
		t.Fatalf("member lists the outsider: %v", got)
	}
	if got := memberNames(x); !slices.Equal(got, []string{"outsider"}) {
		t.Fatalf("outsider sees %v, want only itself", got)
	}
	if n := x.node.Stats().RoutingTablePeers; n != 0 {
		t.Fatalf("outsider's DHT routing table has %d peers", n)
	}
	for _, m := range []*testAgent{a, b} {
		if m.node.Host().Network().Connectedness(x.node.ID()) == network.Connected {
			t.Fatalf("%s holds a libp2p connection to the outsider", m.cfg.NodeName)
		}
	}
	resp, err := http.Get(x.url("/v2/keyring/repo/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("outsider's pull of a member-only blob: %d, want 404", resp.StatusCode)
	}
	getBlobFrom(t, b, "keyring/repo", blob) // b's object store is empty too: from a
}
