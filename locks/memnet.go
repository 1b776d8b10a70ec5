package locks

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemoryNetwork connects memberlist transports in memory, for tests and the
// simulator. Unlike memberlist's MockNetwork it is safe for concurrent use,
// lets a node restart under its old name, and can cut links: packets to a
// stopped or unreachable node are dropped (as UDP would) and stream dials
// fail. The zero value is ready to use.
type MemoryNetwork struct {
	mu     sync.Mutex
	port   int
	byAddr map[string]*MemoryTransport
	byName map[string]*MemoryTransport
	cut    map[[2]string]bool
}

// NewTransport returns a transport for the node name. A node that restarts
// under its old name gets its old address back and replaces its earlier
// transport, as a restarted host keeps its IP.
func (n *MemoryNetwork) NewTransport(name string) *MemoryTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr == nil {
		n.byAddr = make(map[string]*MemoryTransport)
		n.byName = make(map[string]*MemoryTransport)
		n.cut = make(map[[2]string]bool)
	}
	addr := ""
	if old := n.byName[name]; old != nil {
		addr = old.addr
	} else {
		n.port++
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+n.port))
	}
	t := &MemoryTransport{
		net:     n,
		name:    name,
		addr:    addr,
		packets: make(chan *memberlist.Packet, 1024),
		streams: make(chan net.Conn, 64),
		done:    make(chan struct{}),
	}
	n.byAddr[t.addr] = t
	n.byName[name] = t
	return t
}

// SetLink cuts (up false) or restores the link between nodes a and b, in
// both directions.
func (n *MemoryNetwork) SetLink(a, b string, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut == nil {
		n.cut = make(map[[2]string]bool)
	}
	if up {
		delete(n.cut, [2]string{a, b})
		delete(n.cut, [2]string{b, a})
		return
	}
	n.cut[[2]string{a, b}] = true
	n.cut[[2]string{b, a}] = true
}

var errUnreachable = errors.New("memory network: unreachable")

func (n *MemoryNetwork) route(from string, a memberlist.Address) (*MemoryTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var dst *MemoryTransport
	if a.Name != "" {
		dst = n.byName[a.Name]
	} else {
		dst = n.byAddr[a.Addr]
	}
	if dst == nil || dst.stopped() || n.cut[[2]string{from, dst.name}] {
		return nil, fmt.Errorf("route to %s: %w", a.Addr, errUnreachable)
	}
	return dst, nil
}

// MemoryTransport is one node's memberlist transport on a [MemoryNetwork].
type MemoryTransport struct {
	net      *MemoryNetwork
	name     string
	addr     string
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	done     chan struct{}
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*MemoryTransport)(nil)

// Addr returns the transport's address, host:port.
func (t *MemoryTransport) Addr() string { return t.addr }

func (t *MemoryTransport) stopped() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// FinalAdvertiseAddr returns the transport's own address.
func (t *MemoryTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, err
	}
	return net.ParseIP(host), p, nil
}

// WriteTo sends a packet to addr.
func (t *MemoryTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet; it is dropped silently when the
// destination is down, cut off or congested, and when this transport is
// shut down (a crashed host sends nothing, not even its leave).
func (t *MemoryTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.stopped() {
		return now, nil
	}
	dst, err := t.net.route(t.name, a)
	if err != nil {
		return now, nil
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: memAddr(t.addr), Timestamp: now}
	select {
	case dst.packets <- p:
	default:
	}
	return now, nil
}

// PacketCh returns the channel of received packets.
func (t *MemoryTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream to addr.
func (t *MemoryTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a, failing when it is unreachable.
func (t *MemoryTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.stopped() {
		return nil, fmt.Errorf("dial %s from a shut-down transport: %w", a.Addr, errUnreachable)
	}
	dst, err := t.net.route(t.name, a)
	if err != nil {
		return nil, err
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streams <- remote:
		return local, nil
	case <-dst.done:
	case <-timer.C:
	}
	_ = local.Close()
	_ = remote.Close()
	return nil, fmt.Errorf("dial %s: %w", a.Addr, errUnreachable)
}

// StreamCh returns the channel of accepted streams.
func (t *MemoryTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown stops the transport: it receives nothing more.
func (t *MemoryTransport) Shutdown() error {
	t.stopOnce.Do(func() { close(t.done) })
	return nil
}

type memAddr string

func (a memAddr) Network() string { return "memory" }
func (a memAddr) String() string  { return string(a) }
