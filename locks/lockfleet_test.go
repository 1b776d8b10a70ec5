package locks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServiceConfig returns lock settings for tests: short, yet with room
// for a loaded machine running -race to stall for a while.
func testServiceConfig() ServiceConfig {
	c := DefaultServiceConfig()
	c.DefaultTTL = 2 * time.Second
	c.MaxTTL = 2 * time.Second
	c.Grace = 3 * time.Second
	c.RequestTimeout = 5 * time.Second
	c.TickInterval = 10 * time.Millisecond
	return c
}

const urlTag = "lock-url"

// lockFleet runs lock services over loopback HTTP with a shared in-memory
// membership. Links can be cut at the RPC level.
type lockFleet struct {
	t         testing.TB
	mm        MemoryMembership
	transport *http.Transport
	cfg       ServiceConfig

	links linkTable

	mu    sync.Mutex
	nodes map[string]*lockNode
	group map[string]string
	prio  map[string]int
}

type lockNode struct {
	dead   atomic.Bool // crashed: sends nothing more
	member Member
	svc    *Service
	http   *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func newLockFleet(t testing.TB, cfg ServiceConfig) *lockFleet {
	f := &lockFleet{
		t:         t,
		transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		cfg:       cfg,
		nodes:     make(map[string]*lockNode),
		group:     make(map[string]string),
		prio:      make(map[string]int),
	}
	t.Cleanup(func() {
		f.mu.Lock()
		nodes := make([]*lockNode, 0, len(f.nodes))
		for _, n := range f.nodes {
			nodes = append(nodes, n)
		}
		f.mu.Unlock()
		for _, n := range nodes {
			n.stop()
		}
		f.transport.CloseIdleConnections()
	})
	return f
}

func (n *lockNode) stop() {
	n.http.CloseClientConnections()
	n.http.Close()
	n.cancel()
	<-n.done
}

// linkTable records which RPC links are cut.
type linkTable struct {
	mu  sync.Mutex
	cut map[[2]string]bool
}

// setLink cuts or restores the link between a and b, both ways.
func (lt *linkTable) setLink(a, b string, up bool) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.cut == nil {
		lt.cut = make(map[[2]string]bool)
	}
	if up {
		delete(lt.cut, [2]string{a, b})
		delete(lt.cut, [2]string{b, a})
	} else {
		lt.cut[[2]string{a, b}] = true
		lt.cut[[2]string{b, a}] = true
	}
}

func (lt *linkTable) isCut(a, b string) bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.cut[[2]string{a, b}]
}

// cutRT fails requests over a cut link or from a crashed node.
type cutRT struct {
	links    *linkTable
	dead     *atomic.Bool
	from, to string
	next     http.RoundTripper
}

func (c cutRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.links.isCut(c.from, c.to) || c.dead.Load() {
		return nil, errors.New("link cut")
	}
	return c.next.RoundTrip(r)
}

// cutDialer dials members by their URL tag over cutRT.
func cutDialer(links *linkTable, dead *atomic.Bool, from string, next http.RoundTripper) Dialer {
	return func(m Member) (http.RoundTripper, string, error) {
		return cutRT{links, dead, from, m.Name, next}, m.Tags[urlTag], nil
	}
}

func (f *lockFleet) setLink(a, b string, up bool) { f.links.setLink(a, b, up) }

// start runs a node (or restarts it under its old name) and marks it alive.
func (f *lockFleet) start(name, group string, prio int, eligible bool) *lockNode {
	f.t.Helper()
	n := &lockNode{done: make(chan struct{})}
	cfg := f.cfg
	cfg.Membership = f.mm.View(name)
	cfg.Dialer = cutDialer(&f.links, &n.dead, name, f.transport)
	cfg.Logger = testLogger().With("node", name)
	svc, err := NewService(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	m := Member{Name: name, Group: group, Status: StatusAlive, ProxyEligible: eligible, Priority: prio, Tags: map[string]string{urlTag: srv.URL}}
	ctx, cancel := context.WithCancel(context.Background())
	n.member, n.svc, n.http, n.cancel = m, svc, srv, cancel
	f.mu.Lock()
	f.nodes[name] = n
	f.group[name], f.prio[name] = group, prio
	f.mu.Unlock()
	f.mm.Set(m)
	go func() {
		defer close(n.done)
		_ = svc.Run(ctx)
	}()
	return n
}

// kill crashes a node and then reports it failed in membership.
func (f *lockFleet) kill(name string) {
	f.mu.Lock()
	n := f.nodes[name]
	delete(f.nodes, name)
	f.mu.Unlock()
	n.dead.Store(true)
	n.stop()
	f.mm.SetStatus(name, StatusFailed)
}

func (f *lockFleet) node(name string) *lockNode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[name]
}

// waitSettled waits until every node sees the same proxies and no owner is
// in a grace period.
func (f *lockFleet) waitSettled(d time.Duration) {
	f.t.Helper()
	waitFor(f.t, d, "lock fleet settled", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		want := Proxies(f.mm.Members())
		now := time.Now()
		for _, n := range f.nodes {
			n.svc.mu.Lock()
			same := len(n.svc.proxies) == len(want)
			for i := range want {
				same = same && n.svc.proxies[i].Name == want[i].Name
			}
			n.svc.mu.Unlock()
			n.svc.srv.mu.Lock()
			for _, g := range n.svc.srv.table.grace {
				same = same && !now.Before(g.until)
			}
			n.svc.srv.mu.Unlock()
			if !same {
				return false
			}
		}
		return true
	})
}

// startGroups starts groups × size nodes named g<i>-n<j>; priority j, so
// the last node of each group is its proxy.
func (f *lockFleet) startGroups(groups, size int) []string {
	var names []string
	for g := range groups {
		for j := range size {
			name := fmt.Sprintf("g%d-n%d", g, j)
			f.start(name, fmt.Sprintf("g%d", g), j, true)
			names = append(names, name)
		}
	}
	return names
}

// The chaosFleet methods, for the safety test.

func (f *lockFleet) service(node string) *Service { return f.node(node).svc }
func (f *lockFleet) crash(node string)            { f.kill(node) }

func (f *lockFleet) restart(node string) {
	f.mu.Lock()
	g, p := f.group[node], f.prio[node]
	f.mu.Unlock()
	f.start(node, g, p, true)
}

func (f *lockFleet) proxies() []string {
	var out []string
	for _, p := range Proxies(f.mm.Members()) {
		out = append(out, p.Name)
	}
	return out
}
