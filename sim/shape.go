package sim

import (
	"context"
	"io"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/p2p"
)

// slice is the most bytes one shaped read or write moves at a time, so
// streams sharing a link interleave finely.
const slice = 16 << 10

// link is one direction of a host's network interface: a rate shared by
// every stream through it, handed out in arrival order.
type link struct {
	rate  float64 // bytes per second; 0: unlimited
	burst time.Duration
	mu    sync.Mutex
	next  time.Time // when the link is free again
}

func newLink(rate Bandwidth) *link {
	return &link{rate: float64(rate), burst: 5 * time.Millisecond}
}

// reserve books n bytes on the link and returns when they are through.
func (l *link) reserve(n int, now time.Time) time.Time {
	if l == nil || l.rate == 0 || n == 0 {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.next
	if floor := now.Add(-l.burst); start.Before(floor) {
		start = floor
	}
	l.next = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.next
}

// pass books n bytes on every link and sleeps until the slowest is through.
func pass(n int, links ...*link) {
	now := time.Now()
	until := now
	for _, l := range links {
		if t := l.reserve(n, now); t.After(until) {
			until = t
		}
	}
	if d := until.Sub(now); d > 0 {
		time.Sleep(d)
	}
}

// shapedHost is a libp2p host whose streams pass through the host's uplink
// (writes) and downlink (reads): a host's link is shared by all its peers,
// as a real NIC is, which per-pair mock links cannot express.
type shapedHost struct {
	host.Host
	up, down *link
	served   *atomic.Int64 // blob bytes written to peers
}

func (h *shapedHost) wrap(s network.Stream) network.Stream {
	return &shapedStream{Stream: s, h: h}
}

func (h *shapedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.wrap(s), nil
}

func (h *shapedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *shapedHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, func(s network.Stream) { handler(h.wrap(s)) })
}

type shapedStream struct {
	network.Stream
	h *shapedHost
}

func (s *shapedStream) Write(p []byte) (int, error) {
	var done int
	for len(p) > 0 {
		n := min(len(p), slice)
		pass(n, s.h.up)
		w, err := s.Stream.Write(p[:n])
		done += w
		if s.serving() {
			s.h.served.Add(int64(w))
		}
		if err != nil {
			return done, err
		}
		p = p[n:]
	}
	return done, nil
}

// serving reports whether this is the answering side of a blob stream.
func (s *shapedStream) serving() bool {
	return s.Stat().Direction == network.DirInbound && s.Protocol() == p2p.BlobProtocol
}

func (s *shapedStream) Read(p []byte) (int, error) {
	if len(p) > slice {
		p = p[:slice]
	}
	n, err := s.Stream.Read(p)
	pass(n, s.h.down)
	return n, err
}

// originNet is the shared object store as the fleet sees it: one egress
// cap for everyone, a request latency, an on/off switch, and counters.
type originNet struct {
	store   objstore.Store
	egress  *link
	latency time.Duration
	down    atomic.Bool
	bytes   atomic.Int64 // blob bytes served (scaled)
	reads   atomic.Int64 // blob reads started
}

// hostOrigin is one host's view of the object store: its bytes also pass
// the host's own downlink.
type hostOrigin struct {
	o        *originNet
	up, down *link
}

var _ objstore.Store = (*hostOrigin)(nil)

func (h *hostOrigin) check(ctx context.Context) error {
	if h.o.down.Load() {
		return objstore.ErrUnavailable
	}
	if h.o.latency > 0 {
		t := time.NewTimer(h.o.latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (h *hostOrigin) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if err := h.check(ctx); err != nil {
		return objstore.Info{}, err
	}
	return h.o.store.Stat(ctx, key)
}

func (h *hostOrigin) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	rc, err := h.o.store.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	blob := strings.HasPrefix(key, "blobs/")
	if blob {
		h.o.reads.Add(1)
	}
	return &originReader{rc: rc, h: h, blob: blob}, nil
}

func (h *hostOrigin) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	return h.o.store.Put(ctx, key, &upReader{r: r, up: h.up, down: h.o}, size)
}

func (h *hostOrigin) Delete(ctx context.Context, key string) error {
	if err := h.check(ctx); err != nil {
		return err
	}
	return h.o.store.Delete(ctx, key)
}

func (h *hostOrigin) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	if h.o.down.Load() {
		return func(yield func(string, error) bool) { yield("", objstore.ErrUnavailable) }
	}
	return h.o.store.List(ctx, prefix)
}

func (h *hostOrigin) String() string { return "sim-origin" }

type originReader struct {
	rc   io.ReadCloser
	h    *hostOrigin
	blob bool // counted as origin egress
}

func (r *originReader) Read(p []byte) (int, error) {
	if r.h.o.down.Load() {
		return 0, objstore.ErrUnavailable
	}
	if len(p) > slice {
		p = p[:slice]
	}
	n, err := r.rc.Read(p)
	pass(n, r.h.o.egress, r.h.down)
	if r.blob {
		r.h.o.bytes.Add(int64(n))
	}
	return n, err
}

func (r *originReader) Close() error { return r.rc.Close() }

// upReader paces an upload to the object store by the host's uplink.
type upReader struct {
	r    io.Reader
	up   *link
	down *originNet
}

func (u *upReader) Read(p []byte) (int, error) {
	if u.down.down.Load() {
		return 0, objstore.ErrUnavailable
	}
	if len(p) > slice {
		p = p[:slice]
	}
	n, err := u.r.Read(p)
	pass(n, u.up)
	return n, err
}

// seed writes an image into the object store as an agent's push would
// have left it: blobs, the manifest marker and the tag record.
func seedImage(ctx context.Context, s objstore.Store, im *GenImage) error {
	blobs := append([]Blob{im.Config, im.Manifest}, im.Layers...)
	for _, b := range blobs {
		if err := putBytes(ctx, s, objstore.BlobKey(b.Digest), b.Data); err != nil {
			return err
		}
	}
	if err := putBytes(ctx, s, objstore.ManifestKey(im.Repo, im.Manifest.Digest), nil); err != nil {
		return err
	}
	return putBytes(ctx, s, objstore.TagKey(im.Repo, im.Tag), []byte(im.Manifest.Digest.String()))
}

func putBytes(ctx context.Context, s objstore.Store, key string, b []byte) error {
	return s.Put(ctx, key, &byteReader{b: b}, int64(len(b)))
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
