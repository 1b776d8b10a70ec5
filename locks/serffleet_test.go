package locks

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serfLockFleet runs lock services whose membership is serf over an
// in-memory network and whose RPC is loopback HTTP.
type serfLockFleet struct {
	tb        testing.TB
	mn        MemoryNetwork
	cfg       ServiceConfig
	tune      func(*Config)
	transport *http.Transport
	links     linkTable

	mu    sync.Mutex
	nodes map[string]*serfLockNode
	meta  map[string]nodeMeta // every node ever started
	order []string
}

type nodeMeta struct {
	group string
	prio  int
}

type serfLockNode struct {
	name, group string
	prio        int
	serf        *serfNode
	svc         *Service
	http        *httptest.Server
	cancel      context.CancelFunc
	done        chan struct{}
	dead        atomic.Bool
}

// stop ends the node; crash cuts its gossip and RPC first, so that the
// others see it fail rather than leave.
func (n *serfLockNode) stop(crash bool) {
	if crash {
		n.dead.Store(true)
	}
	n.http.CloseClientConnections()
	n.http.Close()
	n.cancel()
	<-n.done
	n.serf.stop(crash)
}

func newSerfLockFleet(tb testing.TB, groups, size int, cfg ServiceConfig, tune func(*Config)) *serfLockFleet {
	tb.Helper()
	f := &serfLockFleet{
		tb: tb, cfg: cfg, tune: tune,
		transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		nodes:     make(map[string]*serfLockNode),
		meta:      make(map[string]nodeMeta),
	}
	tb.Cleanup(func() {
		f.mu.Lock()
		nodes := make([]*serfLockNode, 0, len(f.nodes))
		for _, n := range f.nodes {
			nodes = append(nodes, n)
		}
		f.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { n.stop(false) })
		}
		wg.Wait()
		f.transport.CloseIdleConnections()
	})
	for g := range groups {
		for j := range size {
			name := fmt.Sprintf("g%d-n%d", g, j)
			f.start(name, fmt.Sprintf("g%d", g), j)
			f.order = append(f.order, name)
		}
	}
	f.waitSettled(20 * time.Second)
	return f
}

// start runs a node, or restarts it under its old name and address.
func (f *serfLockFleet) start(name, group string, prio int) *serfLockNode {
	f.tb.Helper()
	n := &serfLockNode{name: name, group: group, prio: prio, done: make(chan struct{})}
	var mux muxHolder
	n.http = httptest.NewServer(&mux)
	var join []string
	f.mu.Lock()
	for _, other := range f.nodes {
		join = append(join, other.serf.transport.Addr())
	}
	f.mu.Unlock()
	slices.Sort(join)
	n.serf = startSerfNode(f.tb, &f.mn, name, group, prio, join, map[string]string{urlTag: n.http.URL}, f.tune)
	c := f.cfg
	c.Membership = n.serf.cluster
	c.Dialer = cutDialer(&f.links, &n.dead, name, f.transport)
	c.Logger = testLogger().With("node", name)
	svc, err := NewService(c)
	if err != nil {
		f.tb.Fatal(err)
	}
	n.svc = svc
	mux.set(svc)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		_ = svc.Run(ctx)
	}()
	f.mu.Lock()
	f.nodes[name] = n
	f.meta[name] = nodeMeta{group: group, prio: prio}
	f.mu.Unlock()
	return n
}

// services returns the services in start order.
func (f *serfLockFleet) services() []*Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Service
	for _, name := range f.order {
		if n := f.nodes[name]; n != nil {
			out = append(out, n.svc)
		}
	}
	return out
}

// waitSettled waits until every service sees every member alive, the same
// proxies, and no grace period.
func (f *serfLockFleet) waitSettled(d time.Duration) {
	f.tb.Helper()
	waitFor(f.tb, d, "serf lock fleet settled", func() bool {
		now := time.Now()
		for _, svc := range f.services() {
			svc.mu.Lock()
			var names []string
			for _, p := range svc.proxies {
				names = append(names, p.Name)
			}
			alive := 0
			for _, m := range svc.members {
				if m.Status == StatusAlive {
					alive++
				}
			}
			svc.mu.Unlock()
			if alive != len(f.order) || !slices.Equal(names, f.expectedProxies()) {
				return false
			}
			svc.srv.mu.Lock()
			inGrace := slices.ContainsFunc(svc.srv.table.grace, func(g graceEntry) bool { return now.Before(g.until) })
			svc.srv.mu.Unlock()
			if inGrace {
				return false
			}
		}
		return true
	})
}

// expectedProxies returns, by group, the running node with the highest
// priority: the proxies once every warm-up is over.
func (f *serfLockFleet) expectedProxies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	best := map[string]string{}
	for name, n := range f.nodes {
		if cur, ok := best[n.group]; !ok || f.meta[cur].prio < n.prio {
			best[n.group] = name
		}
	}
	groups := slices.Sorted(maps.Keys(best))
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = best[g]
	}
	return out
}

// The chaosFleet methods, for the safety test.

func (f *serfLockFleet) service(node string) *Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[node].svc
}

func (f *serfLockFleet) crash(node string) {
	f.mu.Lock()
	n := f.nodes[node]
	delete(f.nodes, node)
	f.mu.Unlock()
	n.stop(true)
}

func (f *serfLockFleet) restart(node string) {
	f.mu.Lock()
	meta := f.meta[node]
	f.mu.Unlock()
	f.start(node, meta.group, meta.prio)
}

func (f *serfLockFleet) setLink(a, b string, up bool) { f.links.setLink(a, b, up) }

// proxies returns the proxies as the first live member sees them.
func (f *serfLockFleet) proxies() []string {
	svcs := f.services()
	if len(svcs) == 0 {
		return nil
	}
	var out []string
	for _, p := range Proxies(svcs[0].cfg.Membership.Members()) {
		out = append(out, p.Name)
	}
	return out
}

// steadyMemberlist slows failure detection down so that a loaded test
// machine does not see members flap (a member reported failed loses its
// leases); these fleets test locking, not failure detection.
func steadyMemberlist(c *Config) {
	c.Memberlist.ProbeInterval = time.Second
	c.Memberlist.ProbeTimeout = 800 * time.Millisecond
	c.Memberlist.SuspicionMult = 5
}

// muxHolder lets an HTTP server start before its handler exists, so that
// its URL can go into the serf tags the service's membership advertises.
type muxHolder struct {
	mu sync.Mutex
	h  http.Handler
}

func (m *muxHolder) set(h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.h = h
}

func (m *muxHolder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	h := m.h
	m.mu.Unlock()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

func TestSerfServiceConformance(t *testing.T) {
	t.Parallel()
	lockerSuite(t, func(t *testing.T) []Locker {
		f := newSerfLockFleet(t, 2, 2, testServiceConfig(), steadyMemberlist)
		s := f.services()
		// g0-n0 is no proxy; g1-n1 is one.
		return []Locker{s[0], s[3]}
	})
}
