package agent

import (
	"log/slog"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/shoal-dev/shoal/locks"
)

// memberGater is the libp2p connection gater of an agent in a serf fleet:
// it admits a peer, inbound or outbound, only if its ID is in the tags of
// a serf member that has not failed or left, or if it is one of the
// configured p2p.bootstrap peers. Serf gossip is encrypted with the
// fleet's keyring, so a host without the key cannot become a member and
// therefore cannot reach the DHT, the blob server or the lock RPC. Until
// the serf cluster exists only the bootstrap peers are admitted.
type memberGater struct {
	static  map[peer.ID]bool
	members atomic.Pointer[func() []locks.Member]
	log     *slog.Logger
}

var _ interface {
	InterceptPeerDial(peer.ID) bool
	InterceptAddrDial(peer.ID, ma.Multiaddr) bool
	InterceptAccept(network.ConnMultiaddrs) bool
	InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool
	InterceptUpgraded(network.Conn) (bool, control.DisconnectReason)
} = (*memberGater)(nil)

// newMemberGater admits the peers named in bootstrap (multiaddrs ending in
// /p2p/<id>; others are ignored) until use supplies the membership.
func newMemberGater(bootstrap []string, log *slog.Logger) *memberGater {
	g := &memberGater{static: map[peer.ID]bool{}, log: log}
	for _, s := range bootstrap {
		if ai, err := peer.AddrInfoFromString(s); err == nil {
			g.static[ai.ID] = true
		}
	}
	return g
}

// use makes members (the serf cluster's view) the source of admissions.
func (g *memberGater) use(members func() []locks.Member) { g.members.Store(&members) }

// admits reports whether p may connect.
func (g *memberGater) admits(p peer.ID) bool {
	if g.static[p] {
		return true
	}
	fn := g.members.Load()
	if fn == nil {
		return false
	}
	id := p.String()
	for _, m := range (*fn)() {
		if m.PeerID == id && !m.Status.Gone() {
			return true
		}
	}
	return false
}

// InterceptPeerDial refuses to dial a peer that is not a member.
func (g *memberGater) InterceptPeerDial(p peer.ID) bool {
	ok := g.admits(p)
	if !ok {
		g.log.Debug("not dialling a peer outside the fleet", "peer", p)
	}
	return ok
}

// InterceptAddrDial admits every address of an admitted peer.
func (g *memberGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept admits every connection until its peer is known.
func (g *memberGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses a connection, in either direction, from a peer
// that is not a member (its ID is authenticated by now).
func (g *memberGater) InterceptSecured(dir network.Direction, p peer.ID, addrs network.ConnMultiaddrs) bool {
	ok := g.admits(p)
	if !ok {
		g.log.Debug("refused a connection from a peer outside the fleet", "peer", p, "addr", addrs.RemoteMultiaddr(), "direction", dir)
	}
	return ok
}

// InterceptUpgraded admits what InterceptSecured admitted.
func (g *memberGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
