package p2p

import (
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
)

// HeaderPeers on a blob response names other peers that asked this host
// for the same blob a moment ago (peer exchange): they are downloading it
// too, so they hold ranges of it or soon will. A downloader that found a
// single provider in the DHT learns the swarm from its answers instead of
// queueing at the first holder: peer IDs, each optionally followed by a
// space and a multiaddr, separated by commas, newest first.
const HeaderPeers = "Shoal-Peers"

const (
	// pexShare is how many peers one answer names.
	pexShare = 8
	// pexKeep is how many recent askers are remembered per blob.
	pexKeep = 32
	// pexBlobs bounds the blobs remembered (the least recently asked go).
	pexBlobs = 256
	// pexFresh is how long an asker counts as part of a blob's swarm.
	pexFresh = 30 * time.Second
)

// pexBook remembers, per blob, the peers that recently asked for it.
type pexBook struct {
	mu    sync.Mutex
	blobs map[digest.Digest]*pexBlob
	clock uint64
}

type pexBlob struct {
	used   uint64
	askers []pexAsker // newest last
}

type pexAsker struct {
	id   peer.ID
	when time.Time
}

// note records that p asked for d at now.
func (b *pexBook) note(d digest.Digest, p peer.ID, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.blobs == nil {
		b.blobs = make(map[digest.Digest]*pexBlob)
	}
	b.clock++
	e := b.blobs[d]
	if e == nil {
		if len(b.blobs) >= pexBlobs {
			b.evictOldest()
		}
		e = &pexBlob{}
		b.blobs[d] = e
	}
	e.used = b.clock
	for i, a := range e.askers {
		if a.id == p {
			e.askers = append(e.askers[:i], e.askers[i+1:]...)
			break
		}
	}
	if len(e.askers) >= pexKeep {
		e.askers = e.askers[1:]
	}
	e.askers = append(e.askers, pexAsker{id: p, when: now})
}

func (b *pexBook) evictOldest() {
	var oldest digest.Digest
	var used uint64
	for d, e := range b.blobs {
		if oldest == "" || e.used < used {
			oldest, used = d, e.used
		}
	}
	delete(b.blobs, oldest)
}

// others returns up to pexShare fresh askers of d other than p, newest first.
func (b *pexBook) others(d digest.Digest, p peer.ID, now time.Time) []peer.ID {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.blobs[d]
	if e == nil {
		return nil
	}
	var out []peer.ID
	for i := len(e.askers) - 1; i >= 0 && len(out) < pexShare; i-- {
		a := e.askers[i]
		if a.id != p && now.Sub(a.when) <= pexFresh {
			out = append(out, a.id)
		}
	}
	return out
}

// pexHeader formats the askers of d (other than p) for HeaderPeers. It
// names them without addresses: fleet members learn each other's from
// serf, and a peer that cannot be dialled is dropped by the downloader.
func (n *Node) pexHeader(d digest.Digest, p peer.ID, now time.Time) string {
	ids := n.pex.others(d, p, now)
	if len(ids) == 0 {
		return ""
	}
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n.ids.name(id))
	}
	return b.String()
}

// idCache remembers peer IDs' text forms both ways: every swarm answer
// names up to pexShare peers, and base58 coding them each time was a few
// per cent of a simulated fleet's CPU. It is bounded (cleared when full).
type idCache struct {
	mu    sync.Mutex
	names map[peer.ID]string
	ids   map[string]peer.ID
}

// idCacheMax bounds each direction of an idCache.
const idCacheMax = 4096

func (c *idCache) name(id peer.ID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.names[id]; ok {
		return s
	}
	if c.names == nil || len(c.names) >= idCacheMax {
		c.names = make(map[peer.ID]string)
	}
	s := id.String()
	c.names[id] = s
	return s
}

func (c *idCache) decode(s string) (peer.ID, error) {
	c.mu.Lock()
	id, ok := c.ids[s]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.ids == nil || len(c.ids) >= idCacheMax {
		c.ids = make(map[string]peer.ID)
	}
	c.ids[s] = id
	c.mu.Unlock()
	return id, nil
}

// parsePeers reads a HeaderPeers value (see parsePeersWith).
func parsePeers(v string) []peer.AddrInfo { return parsePeersWith(v, peer.Decode) }

// parsePeers reads a HeaderPeers value with this node's ID cache.
func (n *Node) parsePeers(v string) []peer.AddrInfo { return parsePeersWith(v, n.ids.decode) }

// parsePeersWith reads a HeaderPeers value, decoding IDs with decode.
// Entries that do not parse are skipped (a peer's hints are only hints);
// at most pexShare are kept.
func parsePeersWith(v string, decode func(string) (peer.ID, error)) []peer.AddrInfo {
	if v == "" {
		return nil
	}
	var out []peer.AddrInfo
	for part := range strings.SplitSeq(v, ",") {
		if len(out) == pexShare {
			break
		}
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 {
			continue
		}
		id, err := decode(f[0])
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		if len(f) == 2 {
			if a, err := multiaddr.NewMultiaddr(f[1]); err == nil {
				ai.Addrs = []multiaddr.Multiaddr{a}
			}
		}
		out = append(out, ai)
	}
	return out
}
