package p2p

import (
	"github.com/libp2p/go-libp2p/core/peer"
)

// Span is a run of adjacent chunks, fetched from one peer with one ranged
// request.
type Span struct {
	// First is the index of the first chunk.
	First int
	// Count is the number of chunks (at least 1).
	Count int
}

// End is the index one past the last chunk.
func (s Span) End() int { return s.First + s.Count }

// chunkState is where one chunk is in a download.
type chunkState uint8

const (
	chunkPending chunkState = iota
	chunkInFlight
	chunkDone
)

// Schedule assigns the chunks of one blob to peers. A blob of size bytes is
// cut into chunks of chunkSize bytes (the last may be shorter). Peers lease
// runs of adjacent pending chunks in blob order, so the blob fills roughly
// front to back (good for readers following the download); a run is at
// most maxRun chunks and at most ceil(pending/workers) (guided
// self-scheduling), so a few chunks still spread over all peers and runs
// shrink towards the end. A peer that finishes early simply leases again,
// so faster peers fetch more. Released chunks (a failed or
// stalled peer's) return to the queue ahead of untouched ones.
//
// Schedule is pure bookkeeping, not safe for concurrent use.
type Schedule struct {
	size, chunkSize int64
	maxRun          int
	state           []chunkState
	owner           []peer.ID
	started         []bool // in flight and bytes are arriving: cannot be stolen
	pending, done   int
}

// NewSchedule returns the schedule of a blob. chunkSize and maxRun must be
// positive.
func NewSchedule(size, chunkSize int64, maxRun int) *Schedule {
	n := 0
	if size > 0 {
		n = int((size + chunkSize - 1) / chunkSize)
	}
	return &Schedule{
		size:      size,
		chunkSize: chunkSize,
		maxRun:    max(maxRun, 1),
		state:     make([]chunkState, n),
		owner:     make([]peer.ID, n),
		started:   make([]bool, n),
		pending:   n,
	}
}

// Chunks is the number of chunks.
func (s *Schedule) Chunks() int { return len(s.state) }

// Bytes returns the byte range [off, off+n) a span covers.
func (s *Schedule) Bytes(sp Span) (off, n int64) {
	off = int64(sp.First) * s.chunkSize
	end := min(int64(sp.End())*s.chunkSize, s.size)
	return off, end - off
}

// ChunkOf returns the chunk holding byte offset off.
func (s *Schedule) ChunkOf(off int64) int { return int(off / s.chunkSize) }

// Next leases to p the first run of pending chunks, at most maxRun long and
// at most ceil(pending/workers) long. ok is false when nothing is pending.
func (s *Schedule) Next(p peer.ID, workers int) (sp Span, ok bool) {
	limit := s.maxRun
	if workers > 0 {
		limit = min(limit, (s.pending+workers-1)/workers)
	}
	return s.NextN(p, limit)
}

// NextN leases to p the first run of pending chunks, at most limit (and
// maxRun) long: the scored policy sizes runs by the peer's share. ok is
// false when nothing is pending.
func (s *Schedule) NextN(p peer.ID, limit int) (sp Span, ok bool) {
	if s.pending == 0 {
		return Span{}, false
	}
	limit = min(max(limit, 1), s.maxRun)
	first := -1
	for i, st := range s.state {
		if st == chunkPending {
			first = i
			break
		}
	}
	end := first
	for end < len(s.state) && end-first < limit && s.state[end] == chunkPending {
		s.state[end] = chunkInFlight
		s.owner[end] = p
		end++
	}
	s.pending -= end - first
	return Span{First: first, Count: end - first}, true
}

// Start marks chunk i as being received by p, which must check it before
// writing the chunk's first byte. It reports false if the chunk is no
// longer p's (it was stolen): p must stop its request there.
func (s *Schedule) Start(i int, p peer.ID) bool {
	if i < 0 || i >= len(s.state) || s.state[i] != chunkInFlight || s.owner[i] != p {
		return false
	}
	s.started[i] = true
	return true
}

// Steal gives p the back half of the longest run of leased but not
// started chunks held by another peer, if that run has at least two
// chunks (the owner keeps the front half). ok is false when there is
// nothing worth stealing.
func (s *Schedule) Steal(p peer.ID) (sp Span, ok bool) {
	bestFirst, bestLen := -1, 0
	for i := 0; i < len(s.state); {
		if s.state[i] != chunkInFlight || s.started[i] || s.owner[i] == p {
			i++
			continue
		}
		q, j := s.owner[i], i+1
		for j < len(s.state) && s.state[j] == chunkInFlight && !s.started[j] && s.owner[j] == q {
			j++
		}
		if j-i >= 2 && j-i > bestLen {
			bestFirst, bestLen = i, j-i
		}
		i = j
	}
	if bestFirst < 0 {
		return Span{}, false
	}
	k := bestLen / 2
	sp = Span{First: bestFirst + bestLen - k, Count: k}
	for c := sp.First; c < sp.End(); c++ {
		s.owner[c] = p
	}
	return sp, true
}

// Received marks chunk i, leased to p, as fetched. It reports false if the
// chunk was not in flight for p (a stale report).
func (s *Schedule) Received(i int, p peer.ID) bool {
	if i < 0 || i >= len(s.state) || s.state[i] != chunkInFlight || s.owner[i] != p {
		return false
	}
	s.state[i] = chunkDone
	s.started[i] = false
	s.done++
	return true
}

// Release returns the chunks of sp still in flight for p to the queue and
// reports how many there were.
func (s *Schedule) Release(sp Span, p peer.ID) int {
	n := 0
	for i := max(sp.First, 0); i < min(sp.End(), len(s.state)); i++ {
		if s.state[i] == chunkInFlight && s.owner[i] == p {
			s.state[i] = chunkPending
			s.owner[i] = ""
			s.started[i] = false
			n++
		}
	}
	s.pending += n
	return n
}

// Unfinished returns the bytes of the chunks of sp still in flight for p.
func (s *Schedule) Unfinished(sp Span, p peer.ID) int64 {
	var n int64
	for i := max(sp.First, 0); i < min(sp.End(), len(s.state)); i++ {
		if s.state[i] == chunkInFlight && s.owner[i] == p {
			_, k := s.Bytes(Span{First: i, Count: 1})
			n += k
		}
	}
	return n
}

// Left is the number of chunks not yet received.
func (s *Schedule) Left() int { return len(s.state) - s.done }

// LeftBytes is the number of bytes not yet received (in whole chunks).
func (s *Schedule) LeftBytes() int64 {
	if s.Left() == 0 {
		return 0
	}
	n := int64(s.Left()) * s.chunkSize
	if s.state[len(s.state)-1] != chunkDone {
		n -= int64(len(s.state))*s.chunkSize - s.size // the short last chunk
	}
	return n
}

// Pending is the number of chunks waiting for a peer.
func (s *Schedule) Pending() int { return s.pending }

// Complete reports whether every chunk was received.
func (s *Schedule) Complete() bool { return s.done == len(s.state) }

// Owner is the peer chunk i was received from (or is leased to).
func (s *Schedule) Owner(i int) peer.ID { return s.owner[i] }

// Plan returns the spans that workers peers leasing in turn would get,
// in order: the static picture of Schedule when every request succeeds
// and all peers are equally fast.
func Plan(size, chunkSize int64, maxRun int, peers []peer.ID) map[peer.ID][]Span {
	s := NewSchedule(size, chunkSize, maxRun)
	out := make(map[peer.ID][]Span)
	for len(peers) > 0 {
		progressed := false
		for _, p := range peers {
			sp, ok := s.Next(p, len(peers))
			if !ok {
				break
			}
			progressed = true
			out[p] = append(out[p], sp)
		}
		if !progressed {
			break
		}
	}
	return out
}
