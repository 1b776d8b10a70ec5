package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// fleet is one strategy's run: agents over a mock network sharing one
// simulated object store.
type fleet struct {
	plan     *Plan
	strategy string
	dir      string
	log      *slog.Logger
	mn       mocknet.Mocknet
	ml       *locks.MemoryNetwork
	origin   *originNet
	client   *http.Client
	// dilate is the run's time dilation (Scenario.TimeDilation).
	dilate int
	// trace, if set, is the debug logger of the host called traceNode.
	trace     *slog.Logger
	traceNode string

	mu    sync.Mutex
	nodes []*node
	cut   map[[2]string]bool // partitioned node pairs (by name, sorted)
}

// The agents' lock leases and grace period: short, as in a fresh fleet, so
// a new proxy's grace period is short (6 s undilated); dilated with the
// links, so a lease lasts as long against the transfers it guards. A
// proxy's grace must outlast any lease.
const (
	leaseTTL        = 3 * time.Second
	lockGraceMargin = 3 * time.Second
)

// lockTimes returns the agents' lease TTL, longest TTL and grace period.
func (f *fleet) lockTimes() (ttl, maxTTL, grace time.Duration) {
	ttl = f.dilated(leaseTTL)
	return ttl, ttl + 2*time.Second, ttl + lockGraceMargin
}

// node is one host: its links and, while it runs, its agent.
type node struct {
	spec     NodeSpec
	up, down *link
	dir      string
	served   atomic.Int64 // blob bytes this host's peers received from it

	mu     sync.Mutex
	agent  *agent.Agent
	host   *shapedHost
	trans  *locks.MemoryTransport
	cancel context.CancelFunc
	done   chan error
}

func (n *node) running() (*agent.Agent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent, n.agent != nil
}

func newFleet(plan *Plan, strategy, dir string, log *slog.Logger) (*fleet, error) {
	s := plan.Scenario
	dilate := s.Dilation(strategy)
	slow := s.Scale * dilate // bandwidths: scaled, then dilated
	store, err := newDiskStore(filepath.Join(dir, "origin"))
	if err != nil {
		return nil, err
	}
	f := &fleet{
		plan: plan, strategy: strategy, dir: dir, log: log, dilate: dilate,
		mn: mocknet.New(), ml: &locks.MemoryNetwork{},
		origin: &originNet{store: store, egress: newLink(scaled(s.Links.OriginEgress, slow)), latency: s.Links.OriginLatency.D() * time.Duration(dilate)},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		cut:    map[[2]string]bool{},
	}
	for _, spec := range plan.Nodes {
		f.nodes = append(f.nodes, &node{spec: spec, dir: filepath.Join(dir, spec.Name),
			up: newLink(scaled(spec.Link, slow)), down: newLink(scaled(spec.Link, slow))})
	}
	return f, nil
}

func scaled(b Bandwidth, scale int) Bandwidth { return b / Bandwidth(scale) }

// dilated is d in the fleet's wall time (see Scenario.TimeDilation).
func (f *fleet) dilated(d time.Duration) time.Duration { return d * time.Duration(f.dilate) }

// node returns the node called name.
func (f *fleet) node(name string) *node {
	for _, n := range f.nodes {
		if n.spec.Name == name {
			return n
		}
	}
	return nil
}

// seed puts the images that are not pushed during the run into the store.
func (f *fleet) seed(ctx context.Context) error {
	for _, im := range f.plan.Images {
		if im.Pushed {
			continue
		}
		if err := seedImage(ctx, f.origin.store, im); err != nil {
			return fmt.Errorf("seed %s: %w", im.Name, err)
		}
	}
	return nil
}

// startAll starts every agent, a few at a time, and waits for the fleet
// to form: every agent ready, every group with a proxy.
func (f *fleet) startAll(ctx context.Context, progress func(string)) error {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make([]error, len(f.nodes))
	for i, n := range f.nodes {
		if i == 0 {
			// The first member is the one the others join.
			if errs[0] = f.start(ctx, n); errs[0] != nil {
				return errs[0]
			}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f.start(ctx, n)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if f.strategy == OriginOnly {
		return nil
	}
	_, _, grace := f.lockTimes()
	if f.strategy == RandomPeer {
		grace = 0 // no origin locks to wait for
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		formed, why := f.formed(ctx)
		if formed {
			// A new proxy grants no lock for a grace period (it cannot know
			// what an earlier proxy granted); a fleet in service is past it.
			if grace == 0 {
				return nil
			}
			progress("fleet formed; waiting out the lock grace period")
			return f.waitGrace(ctx, time.Now().Add(grace+time.Minute))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleet did not form in 3m: %s", why)
		}
		progress("forming fleet: " + why)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitGrace waits until no proxy is in a lock grace period (they began
// while the fleet formed), or until deadline.
func (f *fleet) waitGrace(ctx context.Context, deadline time.Time) error {
	for {
		var until time.Time
		for _, n := range f.nodes {
			st, err := f.status(ctx, n)
			if err != nil {
				return fmt.Errorf("lock grace: %s: %w", n.spec.Name, err)
			}
			if t, err := time.Parse(time.RFC3339Nano, st.LockGraceUntil); err == nil && t.After(until) {
				until = t
			}
		}
		wait := time.Until(until)
		if wait <= 0 {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("lock grace: still running at %s", until.Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + 50*time.Millisecond):
		}
	}
}

// formed reports whether every running agent sees the whole fleet, a proxy
// for its group, and DHT peers.
func (f *fleet) formed(ctx context.Context) (bool, string) {
	for _, n := range f.nodes {
		st, err := f.status(ctx, n)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.spec.Name, err)
		}
		alive := 0
		for _, m := range st.Members {
			if m.Status == "alive" {
				alive++
			}
		}
		switch {
		case alive < len(f.nodes):
			return false, fmt.Sprintf("%s sees %d/%d members", n.spec.Name, alive, len(f.nodes))
		case st.Proxy == "":
			return false, fmt.Sprintf("%s has no group proxy yet", n.spec.Name)
		case st.DHTPeers == 0:
			return false, fmt.Sprintf("%s has no DHT peers", n.spec.Name)
		}
	}
	return true, ""
}

// status reads a node's /status.
func (f *fleet) status(ctx context.Context, n *node) (agent.Status, error) {
	var st agent.Status
	a, ok := n.running()
	if !ok {
		return st, errors.New("not running")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.AdminAddr()+"/status", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

// start runs n's agent (again, after a kill) on a new simulated host.
func (f *fleet) start(ctx context.Context, n *node) error {
	s := f.plan.Scenario
	cfg := config.Default()
	cfg.DataDir = n.dir
	cfg.RegistryAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Origins = []string{"file://" + filepath.Join(f.dir, "origin")} // replaced by the simulated store
	cfg.NodeName, cfg.Group = n.spec.Name, n.spec.Group
	cfg.Log.Level = "warn"
	cfg.DrainTimeout = config.Duration(2 * time.Second)
	ttl, maxTTL, grace := f.lockTimes()
	cfg.Locks = config.LocksConfig{TTL: config.Duration(ttl), MaxTTL: config.Duration(maxTTL), Grace: config.Duration(grace)}
	peers := f.strategy != OriginOnly
	cfg.P2P.Enabled, cfg.Serf.Enabled = peers, peers
	opts := []agent.Option{agent.WithOriginStore(&hostOrigin{o: f.origin, up: n.up, down: n.down})}

	var trans *locks.MemoryTransport
	var sh *shapedHost
	if peers {
		h, err := f.mn.GenPeer()
		if err != nil {
			return fmt.Errorf("%s: mock host: %w", n.spec.Name, err)
		}
		sh = &shapedHost{Host: h, up: n.up, down: n.down, served: &n.served}
		if err := f.link(n, sh); err != nil {
			return err
		}
		trans = f.ml.NewTransport(n.spec.Name)
		cfg.Serf.Addr = trans.Addr()
		if first := f.nodes[0]; first != n {
			cfg.Serf.Join = []string{f.memberAddr(first)}
		}
		chunk := max(int64(64<<10), int64(8<<20)/int64(s.Scale))
		opts = append(opts,
			agent.WithP2PConfig(func(c *p2p.Config) {
				c.Host = sh
				c.Download.ChunkSize = chunk
				// Probes measure links that are scale times slower: their
				// test downloads and byte budget shrink with them (the
				// budget, a share of the link, with dilation too).
				c.Probe.Bytes = max(c.Probe.Bytes/int64(s.Scale), 4<<10)
				c.Probe.ByteRate /= float64(s.Scale * f.dilate)
				c.Probe.OnDemandSize /= int64(s.Scale)
				switch f.strategy {
				case RandomPeer:
					c.Download.Selection = p2p.SelectRandom
				case Hedged:
					// The passive baseline: no probes at all (their
					// bytes are part of what scoring has to earn).
					c.Download.Selection = p2p.SelectHedged
					c.Probe.Interval = 0
				}
				c.FindGrace = 50 * time.Millisecond
				// A swarm's patience is simulated time: undilated, a
				// fleet at 8× gave up on 235 of 1,000 swarms after 1.25
				// simulated seconds.
				c.Download.SwarmStall = f.dilated(cmp.Or(c.Download.SwarmStall, 3*time.Second))
				c.Download.SwarmGiveUp = f.dilated(cmp.Or(c.Download.SwarmGiveUp, 10*time.Second))
				c.Download.StallTimeout = f.dilated(c.Download.StallTimeout)
			}),
			agent.WithClusterConfig(func(c *locks.Config) {
				c.Memberlist = fastMemberlist(trans)
				c.JoinRetry = 200 * time.Millisecond
				c.ProxyWarmup = time.Second
			}))
		if f.strategy == RandomPeer {
			opts = append(opts, agent.WithoutOriginLocks())
		}
	}
	if err := cfg.Finish(); err != nil {
		return err
	}
	log := f.log
	if f.trace != nil && (f.traceNode == n.spec.Name || f.traceNode == "all") {
		log = f.trace
	}
	a, err := agent.New(cfg, log.With("node", n.spec.Name), opts...)
	if err != nil {
		return fmt.Errorf("%s: %w", n.spec.Name, err)
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		cancel()
		return fmt.Errorf("%s: agent failed to start: %w", n.spec.Name, err)
	case <-time.After(time.Minute):
		cancel()
		return fmt.Errorf("%s: agent not ready after 1m", n.spec.Name)
	}
	n.mu.Lock()
	n.agent, n.host, n.trans, n.cancel, n.done = a, sh, trans, cancel, done
	n.mu.Unlock()
	return nil
}

// memberAddr is the gossip address of a node (stable across restarts).
func (f *fleet) memberAddr(n *node) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.trans != nil {
		return n.trans.Addr()
	}
	return ""
}

// link connects a new mock host to every running host, with the latency
// of their group pair, unless a partition separates them.
func (f *fleet) link(n *node, h *shapedHost) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n.mu.Lock()
	n.host = h
	n.mu.Unlock()
	for _, o := range f.nodes {
		o.mu.Lock()
		oh := o.host
		o.mu.Unlock()
		if o == n || oh == nil || f.cut[pair(n.spec.Name, o.spec.Name)] {
			continue
		}
		if err := f.linkHosts(n, o, h.ID(), oh.ID()); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) linkHosts(a, b *node, ida, idb peer.ID) error {
	l, err := f.mn.LinkPeers(ida, idb)
	if err != nil {
		return fmt.Errorf("link %s-%s: %w", a.spec.Name, b.spec.Name, err)
	}
	lat := f.plan.Scenario.Links.InterGroupLatency.D()
	if a.spec.Group == b.spec.Group {
		lat = f.plan.Scenario.Links.IntraGroupLatency.D()
	}
	lat = f.dilated(lat)
	l.SetOptions(mocknet.LinkOptions{Latency: lat})
	return nil
}

// partition cuts every link between the given groups and the others.
func (f *fleet) partition(groups []string) {
	in := map[string]bool{}
	for _, g := range groups {
		in[g] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.nodes {
		for _, b := range f.nodes {
			if !in[a.spec.Group] || in[b.spec.Group] {
				continue
			}
			f.cut[pair(a.spec.Name, b.spec.Name)] = true
			f.ml.SetLink(a.spec.Name, b.spec.Name, false)
			ha, hb := a.hostID(), b.hostID()
			if ha != "" && hb != "" {
				_ = f.mn.DisconnectPeers(ha, hb)
				_ = f.mn.UnlinkPeers(ha, hb)
			}
		}
	}
}

// heal restores every cut link.
func (f *fleet) heal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for p := range f.cut {
		a, b := f.node(p[0]), f.node(p[1])
		f.ml.SetLink(a.spec.Name, b.spec.Name, true)
		ha, hb := a.hostID(), b.hostID()
		if ha != "" && hb != "" {
			errs = append(errs, f.linkHosts(a, b, ha, hb))
		}
	}
	clear(f.cut)
	return errors.Join(errs...)
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (n *node) hostID() peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host == nil || n.agent == nil {
		return ""
	}
	return n.host.ID()
}

// stop ends n's agent. crash cuts its network first, so the fleet sees it
// fail rather than leave.
func (f *fleet) stop(n *node, crash bool) error {
	n.mu.Lock()
	a, cancel, done, trans := n.agent, n.cancel, n.done, n.trans
	n.agent, n.host = nil, nil
	n.mu.Unlock()
	if a == nil {
		return nil
	}
	if crash && trans != nil {
		_ = trans.Shutdown()
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: agent did not stop in 30s", n.spec.Name)
	}
}

// close stops every agent and the mock network. The run is over: agents
// stop as if they crashed, without a hundred leaves flooding the gossip.
func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Go(func() {
			if err := f.stop(n, true); err != nil {
				f.log.Warn("stop agent", "node", n.spec.Name, "err", err)
			}
		})
	}
	wg.Wait()
	_ = f.mn.Close()
}

// fastMemberlist is memberlist's LAN profile over the in-memory transport:
// a hundred agents share a couple of cores, so tighter failure detection
// would take slow scheduling for failures.
func fastMemberlist(tr memberlist.Transport) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Transport = tr
	c.GossipInterval = 100 * time.Millisecond
	// Messages cross memory, not a network: compressing them would only
	// spend the cores the agents share.
	c.EnableCompression = false
	return c
}

// newDiskStore is the object store's backing storage.
func newDiskStore(dir string) (objstore.Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("object store dir: %w", err)
	}
	s, err := filestore.New(dir)
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	return s, nil
}
