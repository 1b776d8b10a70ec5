package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// peerSource serves this agent's blobs to peers: committed ones, and ones
// still arriving (the reader follows the writer; the peer verifies the
// whole blob before it commits anything).
type peerSource struct{ cas *cas.Store }

var _ p2p.BlobSource = peerSource{}

func (s peerSource) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	fl, err := s.cas.Follow(ctx, d)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", p2p.ErrNotFound, d)
	}
	if err != nil {
		return nil, 0, err
	}
	size := fl.Size()
	if size < 0 {
		fl.Close()
		return nil, 0, fmt.Errorf("%w: %s: size not known yet", p2p.ErrNotFound, d)
	}
	return fl, size, nil
}

// attemptWriter is the destination of a multi-source peer fetch. Each
// attempt writes into its own cas writer; verifying an attempt commits it.
// An attempt that does not verify is discarded whole by cas (its followers
// fail), and the next attempt starts a fresh writer.
type attemptWriter struct {
	cas  *cas.Store
	d    digest.Digest
	size int64
	w    atomic.Pointer[cas.Writer]
}

func (a *attemptWriter) WriteAt(p []byte, off int64) (int, error) {
	return a.w.Load().WriteAt(p, off)
}

// verify commits the current attempt; on failure it opens the next one.
func (a *attemptWriter) verify(ctx context.Context) error {
	_, err := a.w.Load().Commit(ctx)
	if err == nil {
		return nil
	}
	next, cerr := a.cas.Create(ctx, a.d, a.size, cas.WriteOptions{State: cas.StateReplicated})
	if cerr != nil {
		return errors.Join(err, fmt.Errorf("next attempt: %w", cerr))
	}
	a.w.Store(next)
	return err
}

// sameGroup reports whether the peer p is a member of this agent's group,
// from serf membership (the tags carry the libp2p peer ID). p2p ranks
// same-group sources first among equals (p2p.Config.SameGroup).
func (a *Agent) sameGroup(p peer.ID) bool {
	if a.cluster == nil {
		return false
	}
	id := p.String()
	for _, m := range a.cluster.Members() {
		if m.PeerID == id {
			return m.Group == a.cfg.Group
		}
	}
	return false
}

// memberPeers returns the libp2p identities of the named serf members
// (alive, with a peer ID), learning their addresses.
// isGroupProxy reports whether this host is its group's lock proxy now.
func (a *Agent) isGroupProxy() bool {
	self := a.cluster.Self()
	p, ok := a.cluster.Proxy(self.Group)
	return ok && p.Name == self.Name
}

func (a *Agent) memberPeers(names []string) []peer.AddrInfo {
	if a.cluster == nil || len(names) == 0 {
		return nil
	}
	var out []peer.AddrInfo
	self := a.node.ID()
	for _, m := range a.cluster.Members() {
		if m.Status != locks.StatusAlive || m.PeerID == "" || !slices.Contains(names, m.Name) {
			continue
		}
		id, err := peer.Decode(m.PeerID)
		if err != nil || id == self {
			continue
		}
		a.learnAddrs(id, m.PeerAddrs)
		out = append(out, peer.AddrInfo{ID: id, Addrs: a.node.Host().Peerstore().Addrs(id)})
	}
	return out
}
