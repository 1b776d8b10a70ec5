package p2p

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// Headers of a blob HEAD or GET response that let a downloader pick among
// providers that are themselves still downloading (DESIGN §2, swarm).
const (
	// HeaderAvailable is how many bytes of the blob, from its start, the
	// serving peer holds (its size when the blob is complete).
	HeaderAvailable = "Shoal-Available"
	// HeaderHave lists the byte ranges the serving peer holds, as
	// "first-last" pairs (inclusive, like HTTP ranges) separated by commas,
	// or "none"; absent when it holds the whole blob.
	HeaderHave = "Shoal-Have"
	// HeaderUploaders is how many peers are downloading blobs from it now.
	HeaderUploaders = "Shoal-Uploaders"
	// HeaderUploadSlots is how many peers it serves at once (0: no limit).
	HeaderUploadSlots = "Shoal-Upload-Slots"
	// HeaderHeldOnly on a request asks for 416 (with Shoal-Have) instead
	// of a wait when the peer does not hold the whole range yet.
	HeaderHeldOnly = "Shoal-Held-Only"
	// HeaderWant, on a HEAD, lists the ranges (as HeaderHave) the asker
	// still needs: a provider that holds none of them whole yet waits up
	// to longPollWait for its download to bring one before it answers, so
	// swarm downloaders hear of new chunks when they land instead of
	// asking again and again.
	HeaderWant = "Shoal-Want"
	// HeaderBusy says why a 503 answer was busy: BusyRange when the range
	// asked for is going out to another peer (this host serves other
	// ranges), BusySlots when every upload slot is taken.
	HeaderBusy = "Shoal-Busy"
)

// ErrBusy is returned (as 503) when every upload slot is taken.
var ErrBusy = errors.New("p2p: every upload slot is taken; try another peer")

// errRangeBusy is ErrBusy for one range: it is going out to another peer.
var errRangeBusy = fmt.Errorf("%w (this range is going out to another peer now; ask it later)", ErrBusy)

// Values of HeaderBusy.
const (
	BusyRange = "range"
	BusySlots = "slots"
)

// errNotHeld is returned (as 416) for a Shoal-Held-Only request of a range
// the peer does not hold yet.
var errNotHeld = errors.New("p2p: range not held yet; try another peer")

// Availability is what a provider says about a blob and its upload load.
type Availability struct {
	Peer      peer.AddrInfo
	Size      int64
	Available int64
	// Have are the ranges [start, end) held, in order.
	Have      [][2]int64
	Uploaders int
	Slots     int
	// Peers are other peers that asked the provider for the blob lately
	// (HeaderPeers): members of its swarm.
	Peers []peer.AddrInfo
}

// Complete reports whether the provider holds the whole blob.
func (a Availability) Complete() bool { return a.Available >= a.Size }

// Busy reports whether the provider has no free upload slot.
func (a Availability) Busy() bool { return a.Slots > 0 && a.Uploaders >= a.Slots }

// longPollWait bounds how long a provider holds a HEAD with HeaderWant.
const longPollWait = time.Second

// Availability asks p how much of d it holds and how loaded it is.
func (n *Node) Availability(ctx context.Context, p peer.AddrInfo, d digest.Digest) (Availability, error) {
	return n.availability(ctx, p, d, nil)
}

// availability is Availability; with want, p answers once it holds one
// of those ranges whole, or after longPollWait (HeaderWant).
func (n *Node) availability(ctx context.Context, p peer.AddrInfo, d digest.Digest, want [][2]int64) (Availability, error) {
	a := Availability{Peer: p}
	n.addProviderAddrs([]peer.AddrInfo{p}) // the request dials p by its ID
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(p.ID, d), nil)
	if err != nil {
		return a, fmt.Errorf("availability of %s on %s: %w", d, p.ID, err)
	}
	if len(want) > 0 {
		req.Header.Set(HeaderWant, formatHave(want))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return a, fmt.Errorf("availability of %s on %s: %w", d, p.ID, err)
	}
	resp.Body.Close()
	// The answer names other downloaders even when p has nothing yet.
	a.Peers = n.parsePeers(resp.Header.Get(HeaderPeers))
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
	if a.Have, err = parseHave(resp.Header.Get(HeaderHave), a.Size); err != nil {
		return a, fmt.Errorf("availability of %s on %s: %w", d, p.ID, err)
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

// availableOf is how much of a blob being served is present from its
// start, and which ranges are (nil: all of it).
func availableOf(rc any, size int64) (int64, [][2]int64) {
	avail := size
	if a, ok := rc.(interface{ Available() int64 }); ok {
		avail = a.Available()
	}
	if avail >= size {
		return size, nil
	}
	if h, ok := rc.(interface{ Held() [][2]int64 }); ok {
		return avail, h.Held()
	}
	return avail, [][2]int64{{0, avail}}
}

// awaitWanted waits until the blob being served (rc) holds one of the
// ranges in want whole, is complete, can change no more, or wait passed.
func awaitWanted(ctx context.Context, rc any, size int64, want [][2]int64, wait time.Duration) {
	ch, ok := rc.(interface{ Changes() <-chan struct{} })
	if !ok || len(want) == 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := ch.Changes()
		if changed == nil {
			return
		}
		_, have := availableOf(rc, size)
		if have == nil {
			return
		}
		for _, r := range want {
			if holds(have, r[0], r[1]) {
				return
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// maxHaveRanges bounds the ranges a Shoal-Have header may list.
const maxHaveRanges = 1024

// formatHave writes ranges [start, end) as "first-last,..." ("none" when
// there are none).
func formatHave(have [][2]int64) string {
	var b []byte
	for i, r := range have {
		if i == maxHaveRanges {
			break
		}
		if r[1] <= r[0] {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, r[0], 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r[1]-1, 10)
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// parseHave reads a Shoal-Have header: empty (absent) means the whole blob,
// "none" nothing. Ranges must be in order, disjoint and inside the blob.
func parseHave(v string, size int64) ([][2]int64, error) {
	switch v {
	case "":
		return [][2]int64{{0, size}}, nil
	case "none":
		return [][2]int64{}, nil
	}
	var out [][2]int64
	prev := int64(-1)
	for part := range strings.SplitSeq(v, ",") {
		if len(out) == maxHaveRanges {
			return nil, fmt.Errorf("bad %s: more than %d ranges", HeaderHave, maxHaveRanges)
		}
		a, b, ok := strings.Cut(strings.TrimSpace(part), "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || first <= prev || last < first || last >= size {
			return nil, fmt.Errorf("bad %s range %q", HeaderHave, part)
		}
		out = append(out, [2]int64{first, last + 1})
		prev = last
	}
	return out, nil
}

// holds reports whether ranges have cover [a, b).
func holds(have [][2]int64, a, b int64) bool {
	for _, r := range have {
		if r[0] <= a && b <= r[1] {
			return true
		}
		if r[0] > a {
			return false
		}
	}
	return false
}

// spread keeps a host from sending the same range to every peer that
// asks for it at once (BitTorrent calls this super-seeding): while a range
// of a blob is on its way to spreadCopies peers, further swarm
// (Shoal-Held-Only) requests for it are told to try elsewhere (503); the
// peers that got it serve it on, so a new range reaches twice as many
// hosts with each transfer time instead of queueing at its first holder.
type spread struct {
	mu      sync.Mutex
	sending map[spreadKey]int
}

type spreadKey struct {
	d   digest.Digest
	off int64
}

// spreadCopies is how many peers one range goes to at once.
const spreadCopies = 1

// take reports whether this host should send bytes of d at off now; if
// so, done must be called when the send ends.
func (s *spread) take(d digest.Digest, off int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sending == nil {
		s.sending = make(map[spreadKey]int)
	}
	k := spreadKey{d, off}
	if s.sending[k] >= spreadCopies {
		return false
	}
	s.sending[k]++
	return true
}

func (s *spread) done(d digest.Digest, off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := spreadKey{d, off}
	if s.sending[k]--; s.sending[k] <= 0 {
		delete(s.sending, k)
	}
}
