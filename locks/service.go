package locks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServiceConfig configures a [Service].
type ServiceConfig struct {
	// Membership is the fleet view: a [Cluster], or a [MemoryMembership] view.
	Membership Membership
	// Dialer reaches other members' lock RPC.
	Dialer Dialer
	// DefaultTTL applies when AcquireOptions.TTL is zero. Default: 10s.
	DefaultTTL time.Duration
	// MaxTTL is the longest TTL an owner grants. Default: 15s.
	MaxTTL time.Duration
	// Grace is how long a proxy that gains lock space grants nothing new
	// there while holders re-assert. It must exceed MaxTTL by the time
	// membership takes to converge. Default: 20s.
	Grace time.Duration
	// RequestTimeout bounds one RPC, on top of its wait. Default: 5s.
	RequestTimeout time.Duration
	// TickInterval is how often expired leases are swept. Default: 100ms.
	TickInterval time.Duration
	// Logger receives lock events. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives the lock metrics.
	Registerer prometheus.Registerer
}

// DefaultServiceConfig returns a ServiceConfig with every default filled in
// except Membership and Dialer.
func DefaultServiceConfig() ServiceConfig {
	return ServiceConfig{
		DefaultTTL:     10 * time.Second,
		MaxTTL:         15 * time.Second,
		Grace:          20 * time.Second,
		RequestTimeout: 5 * time.Second,
		TickInterval:   100 * time.Millisecond,
	}
}

// Validate reports the first invalid setting.
func (c ServiceConfig) Validate() error {
	switch {
	case c.Membership == nil:
		return errors.New("lock service config: nil membership")
	case c.Dialer == nil:
		return errors.New("lock service config: nil dialer")
	case c.DefaultTTL <= 0 || c.DefaultTTL > c.MaxTTL:
		return fmt.Errorf("lock service config: default TTL %v not in (0, max TTL %v]", c.DefaultTTL, c.MaxTTL)
	case c.Grace <= c.MaxTTL:
		return fmt.Errorf("lock service config: grace %v must exceed max TTL %v", c.Grace, c.MaxTTL)
	case c.RequestTimeout <= 0 || c.TickInterval <= 0:
		return errors.New("lock service config: request timeout and tick interval must be positive")
	}
	return nil
}

// Service is the distributed [Locker] of one member, and the lock RPC
// endpoint it serves to the others as an [http.Handler]. As a group proxy
// it forwards requests to the owning proxy; as an owner it keeps the lock
// table.
type Service struct {
	cfg     ServiceConfig
	logger  *slog.Logger
	metrics *metrics
	srv     *tableServer
	mux     *http.ServeMux

	mu      sync.Mutex
	self    Member
	members []Member
	proxies []Member
	gone    map[string]bool
	leases  map[*Lease]struct{} // held through this member
}

var _ Locker = (*Service)(nil)

// NewService returns a Service; it follows membership once Run starts.
func NewService(cfg ServiceConfig) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, logger, err := lockerBase(cfg.Registerer, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, logger: logger, metrics: m, srv: newTableServer(), mux: http.NewServeMux(), gone: make(map[string]bool), leases: make(map[*Lease]struct{})}
	for _, o := range []op{opAcquire, opRenew, opRelease} {
		s.mux.Handle("POST "+rpcPrefix+string(o), wrap(s.handle(o)))
	}
	return s, nil
}

// GraceUntil returns when this proxy's last failover grace period ends,
// the zero time when none is running: until then it grants no new lock
// in the lock space it gained.
func (s *Service) GraceUntil() time.Time { return s.srv.graceUntil() }

// ServeHTTP serves the lock RPC.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Run follows membership and sweeps expired leases until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.srv.run(ctx, s.cfg.TickInterval) })
	for {
		changed := s.cfg.Membership.Changed()
		s.applyView()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// applyView takes in a membership change. A proxy that gains lock space
// starts its grace period before the new view is used, so no request can
// see the new ownership without it; leases of gone members are dropped.
func (s *Service) applyView() {
	self := s.cfg.Membership.Self()
	members := s.cfg.Membership.Members()
	proxies := Proxies(members)

	s.mu.Lock()
	prev := s.proxies
	changed := !slices.EqualFunc(prev, proxies, func(a, b Member) bool { return a.Name == b.Name && a.Group == b.Group })
	isOwner := slices.ContainsFunc(proxies, func(p Member) bool { return p.Name == self.Name })
	var epoch uint64
	if changed && isOwner {
		epoch = s.srv.beginGrace(s.cfg.Grace, maxEpoch(members, "")+1, func(name string) bool {
			p, ok := OwnerProxy(prev, name)
			return !ok || p.Name != self.Name
		})
	} else if isOwner {
		// A member of our group advertising a higher epoch owned our
		// share while views disagreed (we were thought failed): issue
		// tokens above its own from now on.
		if e, raised := s.srv.raiseEpoch(maxEpoch(members, self.Group, self.Name) + 1); raised {
			epoch = e
			s.logger.Warn("raised lock epoch above a group peer's", "epoch", e)
		}
	}
	s.self, s.members, s.proxies = self, members, proxies
	var gone []string
	for _, m := range members {
		switch {
		case m.Status.Gone() && !s.gone[m.Name]:
			s.gone[m.Name] = true
			gone = append(gone, m.Name)
		case !m.Status.Gone():
			delete(s.gone, m.Name)
		}
	}
	var held []*Lease
	if changed {
		for l := range s.leases {
			held = append(held, l)
		}
	}
	s.mu.Unlock()

	// Advertise the epoch: whoever takes over from us starts above it.
	if ts, ok := s.cfg.Membership.(TagSetter); ok && epoch > 0 {
		if err := ts.SetTag(TagEpoch, strconv.FormatUint(epoch, 10)); err != nil {
			s.logger.Warn("advertise lock epoch", "err", err)
		}
	}
	// Holders re-assert at once to wherever their locks now live.
	for _, l := range held {
		l.renewNow()
	}
	if changed {
		s.srv.dropUnowned(func(name string) bool {
			p, ok := OwnerProxy(proxies, name)
			return ok && p.Name == self.Name
		})
		s.logger.Info("lock proxies changed", "proxies", len(proxies), "owner", isOwner)
	}
	for _, n := range gone {
		if dropped := s.srv.dropNode(n); len(dropped) > 0 {
			s.logger.Info("dropped leases of gone member", "member", n, "leases", len(dropped))
		}
	}
	p, ok := Proxy(members, self.Group)
	s.metrics.proxySelf.Set(boolGauge(ok && p.Name == self.Name))
}

// maxEpoch returns the highest token epoch advertised by any member, alive
// or not, or only by the members of group other than self when group is
// set.
func maxEpoch(members []Member, group string, self ...string) uint64 {
	var e uint64
	for _, m := range members {
		if group != "" && (m.Group != group || slices.Contains(self, m.Name)) {
			continue
		}
		if v, err := strconv.ParseUint(m.Tags[TagEpoch], 10, 64); err == nil {
			e = max(e, v)
		}
	}
	return e
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// route returns where a member sends a request: its group proxy, or the
// owner directly when its group has none.
func (s *Service) route(name string) (Member, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := Proxy(s.members, s.self.Group); ok {
		return p, nil
	}
	if o, ok := OwnerProxy(s.proxies, name); ok {
		return o, nil
	}
	return Member{}, fmt.Errorf("route %s: %w", name, ErrNoProxy)
}

func (s *Service) owner(name string) (Member, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := OwnerProxy(s.proxies, name)
	if !ok {
		return Member{}, "", fmt.Errorf("owner of %s: %w", name, ErrNoProxy)
	}
	return o, s.self.Name, nil
}

func (s *Service) handle(o op) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, hops, err := decodeRequest(r)
		if err != nil {
			return err
		}
		g, err := s.dispatch(r.Context(), o, req, hops)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, g)
		return nil
	}
}

// dispatch serves req as owner, or forwards it once to the owner.
func (s *Service) dispatch(ctx context.Context, o op, req wireRequest, hops int) (wireGrant, error) {
	owner, self, err := s.owner(req.Name)
	if err != nil {
		return wireGrant{}, err
	}
	if owner.Name == self {
		return s.serve(ctx, o, req)
	}
	if hops > 0 {
		return wireGrant{}, fmt.Errorf("%s %s: forwarded to %s, owner is %s: %w", o, req.Name, self, owner.Name, ErrNotOwner)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout+time.Duration(req.WaitMs)*time.Millisecond)
	defer cancel()
	return post(ctx, s.cfg.Dialer, owner, o, req, hops+1)
}

// serve runs req against this owner's table.
func (s *Service) serve(ctx context.Context, o op, req wireRequest) (wireGrant, error) {
	g := req.grant()
	if g.TTL > s.cfg.MaxTTL {
		return wireGrant{}, fmt.Errorf("ttl %v above %v: %w", g.TTL, s.cfg.MaxTTL, ErrInvalid)
	}
	var (
		waited time.Duration
		err    error
	)
	switch o {
	case opAcquire:
		r := Request{Name: g.Name, Holder: g.Holder, Limit: g.Limit, TTL: g.TTL}
		g, waited, err = s.srv.acquire(ctx, r, time.Duration(req.WaitMs)*time.Millisecond)
	case opRenew:
		g, err = s.srv.renew(g)
	case opRelease:
		err = s.srv.release(g)
	}
	if err != nil {
		return wireGrant{}, err
	}
	return wireGrant{Name: g.Name, Token: g.Token, Limit: g.Limit, TTLMs: g.TTL.Milliseconds(), WaitedNs: waited.Nanoseconds()}, nil
}

// send delivers a request from this member to its entry proxy.
func (s *Service) send(ctx context.Context, o op, req wireRequest) (wireGrant, error) {
	target, err := s.route(req.Name)
	if err != nil {
		return wireGrant{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout+time.Duration(req.WaitMs)*time.Millisecond)
	defer cancel()
	if target.Name == s.selfName() {
		return s.dispatch(ctx, o, req, 0)
	}
	return post(ctx, s.cfg.Dialer, target, o, req, 0)
}

func (s *Service) selfName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self.Name
}

// Acquire takes the lock name through this member's group proxy.
func (s *Service) Acquire(ctx context.Context, name string, opts AcquireOptions) (*Lease, error) {
	if opts.TTL == 0 {
		opts.TTL = s.cfg.DefaultTTL
	}
	node := s.cfg.Membership.Self().Name
	ask := func(ctx context.Context, r Request, wait time.Duration) (Grant, time.Duration, error) {
		wg, err := s.send(ctx, opAcquire, toWire(r, 0, wait))
		if err != nil {
			return Grant{}, 0, err
		}
		g := Grant{Name: wg.Name, Token: wg.Token, Limit: wg.Limit, Holder: r.Holder, TTL: time.Duration(wg.TTLMs) * time.Millisecond}
		return g, time.Duration(wg.WaitedNs), nil
	}
	return acquire(ctx, node, name, opts, ask, serviceBackend{s}, s.metrics, s.logger)
}

type serviceBackend struct{ s *Service }

func (b serviceBackend) track(l *Lease) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.leases[l] = struct{}{}
}

func (b serviceBackend) untrack(l *Lease) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	delete(b.s.leases, l)
}

func (b serviceBackend) renew(ctx context.Context, g Grant) error {
	_, err := b.s.send(ctx, opRenew, toWire(Request{Name: g.Name, Holder: g.Holder, Limit: g.Limit, TTL: g.TTL}, g.Token, 0))
	return err
}

func (b serviceBackend) release(ctx context.Context, g Grant) error {
	_, err := b.s.send(ctx, opRelease, toWire(Request{Name: g.Name, Holder: g.Holder, Limit: g.Limit, TTL: g.TTL}, g.Token, 0))
	return err
}
