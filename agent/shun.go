package agent

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// shunFor is how long a provider that failed a blob's swarm (it sent none
// of it) is left out of that blob's next plans. Without it, a provider
// whose copy is gone but whose DHT record lives on (a disk fault) was found
// again by every retry of the fetch, and each retry spent the swarm's whole
// patience on it before the origin got a turn.
const shunFor = time.Minute

// maxShunned bounds the digests remembered; the oldest go first.
const maxShunned = 1024

// shunList remembers, per blob, the providers that failed it recently.
type shunList struct {
	mu    sync.Mutex
	until map[digest.Digest]map[peer.ID]time.Time
	now   func() time.Time
}

func newShunList() *shunList {
	return &shunList{until: make(map[digest.Digest]map[peer.ID]time.Time), now: time.Now}
}

// add leaves ids out of d's plans for shunFor.
func (s *shunList) add(d digest.Digest, ids ...peer.ID) {
	if len(ids) == 0 {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	m := s.until[d]
	if m == nil {
		m = make(map[peer.ID]time.Time)
		s.until[d] = m
	}
	for _, id := range ids {
		m[id] = now.Add(shunFor)
	}
}

// prune drops expired entries and, above maxShunned digests, the ones
// that expire first. Called with mu held.
func (s *shunList) prune(now time.Time) {
	var oldest digest.Digest
	var oldestAt time.Time
	for d, m := range s.until {
		last := time.Time{}
		for id, t := range m {
			if !t.After(now) {
				delete(m, id)
			} else if t.After(last) {
				last = t
			}
		}
		if len(m) == 0 {
			delete(s.until, d)
			continue
		}
		if oldest == "" || last.Before(oldestAt) {
			oldest, oldestAt = d, last
		}
	}
	if len(s.until) >= maxShunned && oldest != "" {
		delete(s.until, oldest)
	}
}

// filter returns provs without the providers shunned for d.
func (s *shunList) filter(d digest.Digest, provs []peer.AddrInfo) []peer.AddrInfo {
	if len(provs) == 0 {
		return provs
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.until[d]
	if len(m) == 0 {
		return provs
	}
	kept := make([]peer.AddrInfo, 0, len(provs))
	for _, p := range provs {
		if t, ok := m[p.ID]; ok && t.After(now) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}
