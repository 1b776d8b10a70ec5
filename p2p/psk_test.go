package p2p

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
)

func writeSwarmKey(t *testing.T, seed byte) string {
	t.Helper()
	key := bytes.Repeat([]byte{seed}, 32)
	path := filepath.Join(t.TempDir(), "swarm.key")
	data := "/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key) + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrivateNetwork: only nodes holding the same swarm key connect, and
// QUIC is dropped because go-libp2p refuses it on a private network.
func TestPrivateNetwork(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	withKey := func(path string) Config {
		cfg := testConfig()
		cfg.SwarmKeyFile = path
		return cfg
	}
	key1 := writeSwarmKey(t, 1)
	blob := randomBlob(7, 100<<10)
	src := NewMemorySource()
	d := src.Put(blob)
	a := startNode(t, withKey(key1), src)
	for _, addr := range a.Addrs() {
		if strings.Contains(addr, "quic") {
			t.Fatalf("private node listens on QUIC: %s", addr)
		}
	}

	member := startNode(t, withKey(key1), NewMemorySource())
	if err := member.Connect(ctx, a.Addrs()[0]); err != nil {
		t.Fatalf("same key: %v", err)
	}
	dst := newMemFile(int64(len(blob)))
	if _, err := member.Download(ctx, d, int64(len(blob)), []peer.AddrInfo{addrInfo(a)}, dst); err != nil || !bytes.Equal(dst.Bytes(), blob) {
		t.Fatalf("download inside the private network: %v", err)
	}

	outsiders := map[string]*Node{
		"no key":    startNode(t, testConfig(), NewMemorySource()),
		"other key": startNode(t, withKey(writeSwarmKey(t, 2)), NewMemorySource()),
	}
	for name, n := range outsiders {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		err := n.Connect(cctx, a.Addrs()[0])
		ccancel()
		if err == nil {
			t.Errorf("%s: connected to a private network", name)
		}
	}
}

// denyGater refuses every secured connection from or to one peer.
type denyGater struct{ deny peer.ID }

func (g denyGater) InterceptPeerDial(p peer.ID) bool             { return p != g.deny }
func (g denyGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g denyGater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (g denyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (g denyGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return p != g.deny
}

func TestConnectionGater(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stranger := startNode(t, testConfig(), NewMemorySource())
	friend := startNode(t, testConfig(), NewMemorySource())
	cfg := testConfig()
	cfg.ConnectionGater = denyGater{deny: stranger.ID()}
	gated := startNode(t, cfg, NewMemorySource())
	if err := friend.Connect(ctx, gated.Addrs()[0]); err != nil {
		t.Fatalf("admitted peer: %v", err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	defer ccancel()
	if err := stranger.Connect(cctx, gated.Addrs()[0]); err == nil {
		// The dialer may finish its handshake before the gater's side
		// closes; a stream must still be impossible.
		if _, err := stranger.Stat(cctx, gated.ID(), digest.FromString("x")); err == nil {
			t.Fatal("refused peer reached the blob server")
		}
	}
}
