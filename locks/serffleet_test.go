package locks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// serfLockFleet runs lock services whose membership is serf over an
// in-memory network and whose RPC is loopback HTTP.
type serfLockFleet struct {
	serf      []*serfNode
	services  []*Service
	transport *http.Transport
}

func newSerfLockFleet(tb testing.TB, groups, size int, cfg ServiceConfig) *serfLockFleet {
	tb.Helper()
	var mn MemoryNetwork
	f := &serfLockFleet{transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var servers []*httptest.Server
	tb.Cleanup(func() {
		for _, s := range servers {
			s.CloseClientConnections()
			s.Close()
		}
		cancel()
		wg.Wait()
		var stops sync.WaitGroup
		for _, n := range f.serf {
			stops.Go(func() { n.stop(false) })
		}
		stops.Wait()
		f.transport.CloseIdleConnections()
	})
	for g := range groups {
		for j := range size {
			name := fmt.Sprintf("g%d-n%d", g, j)
			var mux muxHolder
			srv := httptest.NewServer(&mux)
			servers = append(servers, srv)
			var join []string
			if len(f.serf) > 0 {
				join = []string{f.serf[0].transport.Addr()}
			}
			n := startSerfNode(tb, &mn, name, fmt.Sprintf("g%d", g), j, join, map[string]string{urlTag: srv.URL}, steadyMemberlist)
			f.serf = append(f.serf, n)
			c := cfg
			c.Membership = n.cluster
			c.Dialer = TagDialer(urlTag, f.transport)
			c.Logger = testLogger().With("node", name)
			svc, err := NewService(c)
			if err != nil {
				tb.Fatal(err)
			}
			mux.set(svc)
			f.services = append(f.services, svc)
			wg.Go(func() { _ = svc.Run(ctx) })
		}
	}
	waitFor(tb, 20*time.Second, "serf lock fleet settled", func() bool {
		now := time.Now()
		var want []string
		for i, svc := range f.services {
			svc.mu.Lock()
			var names []string
			for _, p := range svc.proxies {
				names = append(names, p.Name)
			}
			full := len(svc.members) == groups*size
			svc.mu.Unlock()
			if !full || len(names) != groups || (i > 0 && !slices.Equal(names, want)) {
				return false
			}
			want = names
			svc.srv.mu.Lock()
			inGrace := slices.ContainsFunc(svc.srv.table.grace, func(g graceEntry) bool { return now.Before(g.until) })
			svc.srv.mu.Unlock()
			if inGrace {
				return false
			}
		}
		return true
	})
	return f
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
		f := newSerfLockFleet(t, 2, 2, testServiceConfig())
		// g0-n0 is no proxy; g1-n1 is one.
		return []Locker{f.services[0], f.services[3]}
	})
}
