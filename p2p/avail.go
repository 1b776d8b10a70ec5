package p2p

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// Headers of a blob HEAD or GET response that let a downloader pick among
// providers that are themselves still downloading (DESIGN §2, swarm).
const (
	// HeaderAvailable is how many bytes of the blob, from its start, the
	// serving peer holds (its size when the blob is complete).
	HeaderAvailable = "Shoal-Available"
	// HeaderUploaders is how many peers are downloading blobs from it now.
	HeaderUploaders = "Shoal-Uploaders"
	// HeaderUploadSlots is how many peers it serves at once (0: no limit).
	HeaderUploadSlots = "Shoal-Upload-Slots"
)

// ErrBusy is returned (as 503) when every upload slot is taken.
var ErrBusy = errors.New("p2p: every upload slot is taken; try another peer")

// Availability is what a provider says about a blob and its upload load.
type Availability struct {
	Peer      peer.AddrInfo
	Size      int64
	Available int64
	Uploaders int
	Slots     int
}

// Complete reports whether the provider holds the whole blob.
func (a Availability) Complete() bool { return a.Available >= a.Size }

// Busy reports whether the provider has no free upload slot.
func (a Availability) Busy() bool { return a.Slots > 0 && a.Uploaders >= a.Slots }

// Availability asks p how much of d it holds and how loaded it is.
func (n *Node) Availability(ctx context.Context, p peer.AddrInfo, d digest.Digest) (Availability, error) {
	a := Availability{Peer: p}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(p.ID, d), nil)
	if err != nil {
		return a, fmt.Errorf("availability of %s on %s: %w", d, p.ID, err)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return a, fmt.Errorf("availability of %s on %s: %w", d, p.ID, err)
	}
	resp.Body.Close()
	if err := checkStatus(resp, d, http.StatusOK); err != nil {
		return a, fmt.Errorf("availability on %s: %w", p.ID, err)
	}
	if resp.ContentLength < 0 {
		return a, fmt.Errorf("availability of %s on %s: no content length", d, p.ID)
	}
	a.Size = resp.ContentLength
	a.Available = a.Size // peers that do not say hold it all
	if v := resp.Header.Get(HeaderAvailable); v != "" {
		if a.Available, err = strconv.ParseInt(v, 10, 64); err != nil || a.Available < 0 || a.Available > a.Size {
			return a, fmt.Errorf("availability of %s on %s: bad %s %q", d, p.ID, HeaderAvailable, v)
		}
	}
	a.Uploaders, _ = strconv.Atoi(resp.Header.Get(HeaderUploaders))
	a.Slots, _ = strconv.Atoi(resp.Header.Get(HeaderUploadSlots))
	return a, nil
}

// uploadSlots bounds how many peers download from this node at once, so
// that a host that has a blob early is not split a hundred ways: the
// others take their copy from the peers it feeds, and a rollout forms a
// tree. A peer with an upload running may open more streams.
type uploadSlots struct {
	mu    sync.Mutex
	limit int // 0: unlimited
	peers map[string]int
}

// SetUploadSlots sets how many peers this node serves at once (0: no limit).
func (n *Node) SetUploadSlots(k int) {
	n.slots.mu.Lock()
	defer n.slots.mu.Unlock()
	n.slots.limit = max(k, 0)
}

func (s *uploadSlots) take(remote string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers == nil {
		s.peers = make(map[string]int)
	}
	if s.peers[remote] == 0 && s.limit > 0 && len(s.peers) >= s.limit {
		return false
	}
	s.peers[remote]++
	return true
}

func (s *uploadSlots) release(remote string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers[remote]--; s.peers[remote] <= 0 {
		delete(s.peers, remote)
	}
}

func (s *uploadSlots) load() (uploaders, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers), s.limit
}

// availableOf is how much of a blob being served is present.
func availableOf(rc any, size int64) int64 {
	if a, ok := rc.(interface{ Available() int64 }); ok {
		return a.Available()
	}
	return size
}
