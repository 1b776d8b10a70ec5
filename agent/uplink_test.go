package agent

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/shoal-dev/shoal/p2p"
)

// uplinkHost is a loopback libp2p host whose answers to blob requests
// leave at most rate bytes per second, all peers together: a host's NIC,
// which loopback lacks. Without it the first holder of a blob is an
// infinitely fast source and a swarm has no reason to form.
type uplinkHost struct {
	host.Host
	rate float64 // bytes per second

	mu   sync.Mutex
	next time.Time // when the uplink is free again
}

// newUplinkHost starts a loopback TCP host (the agent closes it with its
// node) whose blob answers are paced at rate.
func newUplinkHost(t testing.TB, rate float64) *uplinkHost {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	return &uplinkHost{Host: h, rate: rate}
}

// book reserves n bytes of the uplink and returns when they are through.
func (h *uplinkHost) book(n int) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if h.next.Before(now) {
		h.next = now
	}
	h.next = h.next.Add(time.Duration(float64(n) / h.rate * float64(time.Second)))
	return h.next
}

func (h *uplinkHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	if pid != p2p.BlobProtocol {
		h.Host.SetStreamHandler(pid, handler)
		return
	}
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&uplinkStream{Stream: s, h: h}) })
}

// uplinkStream paces what the host writes on an inbound blob stream.
type uplinkStream struct {
	network.Stream
	h *uplinkHost
}

func (s *uplinkStream) Write(b []byte) (int, error) {
	var done int
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		time.Sleep(time.Until(s.h.book(n)))
		w, err := s.Stream.Write(b[:n])
		done += w
		if err != nil {
			return done, err
		}
		b = b[n:]
	}
	return done, nil
}
