package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// lockRPCPattern is where the lock service is mounted on the peer server.
const lockRPCPattern = "/v1/locks/"

// openFleet prepares serf membership and the lock service; the lock RPC is
// served to peers over libp2p streams. Run starts them.
func (a *Agent) openFleet() error {
	ccfg := locks.DefaultConfig()
	ccfg.NodeName = a.cfg.NodeName
	ccfg.Group = a.cfg.Group
	ccfg.BindAddr = a.cfg.Serf.Addr
	ccfg.Join = a.cfg.Serf.Join
	ccfg.KeyringFile = a.cfg.Serf.KeyringFile
	ccfg.ProxyEligible = a.cfg.Serf.ProxyEligible
	ccfg.Priority = a.cfg.Serf.ProxyPriority
	ccfg.PeerID = a.node.ID().String()
	ccfg.PeerAddrs = a.node.Addrs()
	ccfg.Logger = a.log.With("part", "serf")
	if a.embed.cluster != nil {
		a.embed.cluster(&ccfg)
	}
	cluster, err := locks.New(ccfg)
	if err != nil {
		return fmt.Errorf("serf: %w", err)
	}
	scfg := locks.DefaultServiceConfig()
	scfg.Membership, scfg.Dialer = cluster, a.lockDialer
	scfg.DefaultTTL = time.Duration(a.cfg.Locks.TTL)
	scfg.MaxTTL = time.Duration(a.cfg.Locks.MaxTTL)
	scfg.Grace = time.Duration(a.cfg.Locks.Grace)
	scfg.Logger, scfg.Registerer = a.log.With("part", "locks"), a.metrics.reg
	svc, err := locks.NewService(scfg)
	if err != nil {
		return fmt.Errorf("lock service: %w", err)
	}
	a.node.Handle(lockRPCPattern, svc)
	a.cluster, a.lockService, a.locker = cluster, svc, svc
	return nil
}

// lockDialer reaches a member's lock RPC over a libp2p stream.
func (a *Agent) lockDialer(m locks.Member) (http.RoundTripper, string, error) {
	id, err := peer.Decode(m.PeerID)
	if err != nil {
		return nil, "", fmt.Errorf("member %s: peer id %q: %w", m.Name, m.PeerID, err)
	}
	a.learnAddrs(id, m.PeerAddrs)
	return a.node.PeerTransport(), p2p.PeerURL(id), nil
}

// learnAddrs records a member's libp2p addresses for dialing.
func (a *Agent) learnAddrs(id peer.ID, addrs []string) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		if info, err := peer.AddrInfoFromString(s); err == nil {
			mas = append(mas, info.Addrs...)
		} else if m, err := ma.NewMultiaddr(s); err == nil {
			mas = append(mas, m)
		}
	}
	a.node.Host().Peerstore().AddAddrs(id, mas, 10*time.Minute)
}

// maxDecodedIDs bounds connectMembers' cache of decoded peer IDs.
const maxDecodedIDs = 4096

// connectMembers keeps the DHT joined to the fleet: serf membership is the
// bootstrap list, so an agent needs one --join address, not multiaddrs.
func (a *Agent) connectMembers(ctx context.Context) error {
	self := a.node.ID()
	// Member lists come whole on every change (a tag update of one member
	// included): decode each peer ID once.
	ids := make(map[string]peer.ID)
	for {
		changed := a.cluster.Changed()
		for _, m := range a.cluster.Members() {
			if m.Status != locks.StatusAlive || m.PeerID == "" {
				continue
			}
			id, ok := ids[m.PeerID]
			if !ok {
				var err error
				if id, err = peer.Decode(m.PeerID); err != nil {
					continue
				}
				if len(ids) >= maxDecodedIDs {
					clear(ids)
				}
				ids[m.PeerID] = id
			}
			if id == self || a.node.Host().Network().Connectedness(id) == network.Connected {
				continue
			}
			a.learnAddrs(id, m.PeerAddrs)
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := a.node.Host().Connect(cctx, peer.AddrInfo{ID: id})
			cancel()
			if err != nil {
				a.log.Debug("connect to member", "member", m.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(30 * time.Second): // retry members that were unreachable
		}
	}
}
