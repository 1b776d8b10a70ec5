// Package agent wires Shoal's parts into the node agent: the local cache
// (cas), repository metadata, the object-store origins with their
// replication outbox, the OCI Distribution API and the admin API.
//
// New is cheap and only validates; Run opens everything, serves until its
// context ends, then drains and closes in reverse order.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/agent/meta"
	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/agent/sdnotify"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
	"github.com/shoal-dev/shoal/cas/objstore/s3store"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
	"github.com/shoal-dev/shoal/registryapi"
)

// Version is the agent's version, set at build time with -ldflags.
var Version = "dev"

// Agent is one Shoal node agent.
type Agent struct {
	cfg    config.Config
	log    *slog.Logger
	notify *sdnotify.Notifier
	level  *slog.LevelVar // nil: the level cannot change at run time

	ready     chan struct{}
	readyOnce sync.Once
	// fetch is the running fetcher (nil before Run makes it).
	fetch    atomic.Pointer[fetcher]
	draining chan struct{} // closed when shutdown starts

	// Set by Run before ready is closed.
	cas          *cas.Store
	db           *bbolt.DB
	meta         *meta.Store
	store        objstore.Store
	outbox       *outbox.Outbox
	registry     *registry
	node         *p2p.Node      // nil when p2p is off
	cluster      *locks.Cluster // nil when serf is off
	lockService  *locks.Service // nil when serf is off
	gater        *memberGater   // admits only serf members to libp2p; nil when serf is off
	local        *locks.Local   // the locker when serf is off
	locker       locks.Locker
	holds        holds // locks held for local clients
	originStats  *observe.Metrics
	origins      []*observe.Store // one per configured origin, for /status
	metrics      *metrics
	pulls        *pullSources // where recent fetches' bytes came from
	registryAddr string
	adminAddr    string
	embed        embedding // parts substituted by an embedding program
	chunkSize    int64     // the p2p download chunk size (origin reads split by it)
}

// Option adjusts an Agent built by New.
type Option func(*Agent)

// WithNotifier makes the agent report readiness, watchdog pings and
// shutdown to systemd through n (nil: no notifications).
func WithNotifier(n *sdnotify.Notifier) Option {
	return func(a *Agent) { a.notify = n }
}

// WithLogLevel lets the admin API change the log level at run time
// (GET/PUT /loglevel) through v, the level of the agent's log handler.
func WithLogLevel(v *slog.LevelVar) Option {
	return func(a *Agent) { a.level = v }
}

// New validates cfg and returns an agent that Run will start.
func New(cfg config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, ready: make(chan struct{}), draining: make(chan struct{})}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Ready is closed once the agent serves requests.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// RegistryAddr is the bound address of the registry API (after Ready).
func (a *Agent) RegistryAddr() string { return a.registryAddr }

// AdminAddr is the bound address of the admin API (after Ready).
func (a *Agent) AdminAddr() string { return a.adminAddr }

// Run starts the agent and blocks until ctx ends or a part fails.
func (a *Agent) Run(ctx context.Context) (err error) {
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	if err := os.MkdirAll(a.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ccfg := cas.DefaultConfig(filepath.Join(a.cfg.DataDir, "cas"))
	ccfg.MaxBytes = int64(a.cfg.Cache.MaxBytes)
	ccfg.HighWatermark, ccfg.LowWatermark = a.cfg.Cache.HighWatermark, a.cfg.Cache.LowWatermark
	ccfg.Logger = a.log.With("part", "cas")
	ccfg.OnChange = a.onCacheChange
	if a.cas, err = cas.Open(ctx, ccfg); err != nil {
		if errors.Is(err, bberrors.ErrTimeout) {
			return fmt.Errorf("open cache: another agent is using data dir %s", a.cfg.DataDir)
		}
		return fmt.Errorf("open cache: %w", err)
	}
	closers = append(closers, a.cas.Close)

	dbPath := filepath.Join(a.cfg.DataDir, "meta.db")
	if a.db, err = bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: 2 * time.Second}); err != nil {
		if errors.Is(err, bberrors.ErrTimeout) {
			return fmt.Errorf("open %s: another agent is using data dir %s", dbPath, a.cfg.DataDir)
		}
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	closers = append(closers, a.db.Close)
	if a.meta, err = meta.New(a.db); err != nil {
		return err
	}
	if a.store, err = a.openOrigins(ctx); err != nil {
		return err
	}
	a.outbox, err = outbox.New(outbox.Config{
		DB: a.db, Store: a.store, Source: casSource{a.cas},
		OnDone: a.onReplicated, Logger: a.log.With("part", "outbox"),
	})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if a.cfg.P2P.Enabled {
		if a.node, err = a.openP2P(ctx); err != nil {
			return err
		}
		a.node.SetPeerLimits(p2p.PeerLimits{MaxStreams: a.cfg.P2P.MaxStreamsPerPeer,
			BytesPerSecond: int64(a.cfg.P2P.PeerUploadRate), WriteStall: 30 * time.Second})
		closers = append(closers, a.node.Close)
	}
	a.metrics = newMetrics(a)
	a.pulls = newPullSources(time.Now)
	a.metrics.reg.MustRegister(a.pulls.collectors()...)
	if a.cfg.Serf.Enabled {
		if err := a.openFleet(); err != nil {
			return err
		}
		if a.gater != nil {
			a.gater.use(a.cluster.Members)
		}
	} else {
		lcfg := locks.DefaultLocalConfig()
		lcfg.Logger, lcfg.Registerer = a.log.With("part", "locks"), a.metrics.reg
		if a.local, err = locks.NewLocal(lcfg); err != nil {
			return fmt.Errorf("locks: %w", err)
		}
		a.locker = a.local
	}
	if err := a.requeueLocal(ctx); err != nil {
		return err
	}

	life, stopFetches := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFetches()
	fetch := &fetcher{cas: a.cas, node: a.node, log: a.log.With("part", "fetch"), life: life, originSplit: a.chunkSize, pulls: a.pulls, shun: newShunList(),
		onLockWait:  func(d time.Duration) { a.metrics.lockWait.Observe(d.Seconds()) },
		onBytes:     func(source string, n int64) { a.metrics.fetchBytes.WithLabelValues(source).Add(float64(n)) },
		onFind:      func(d time.Duration) { a.metrics.dhtFind.Observe(d.Seconds()) },
		onSwarmFail: a.metrics.swarmFailures.Inc}
	org := &origin{store: a.store, queue: a.outbox, cas: a.cas}
	mirrors, err := newUpstreams(a.cfg.Mirror, a.log.With("part", "upstream"))
	if err != nil {
		return err
	}
	fallback, err := registryOrigins(a.cfg.Origins, a.cfg.Mirror, a.log.With("part", "upstream"))
	if err != nil {
		return err
	}
	a.fetch.Store(fetch)
	a.registry = &registry{cas: a.cas, meta: a.meta, origin: org, outbox: a.outbox, fetch: fetch, mirrors: mirrors, fallback: fallback,
		syncPush: a.cfg.Push.Replication == "sync", readAhead: a.cfg.P2P.ReadAhead, log: a.log.With("part", "registry")}

	opts := registryapi.DefaultOptions()
	opts.Logger = a.log.With("part", "api")
	opts.OnRequest = a.metrics.observeRequest
	opts.MaxUploadBytes = int64(a.cfg.Push.MaxUploadBytes)
	regSrv := &http.Server{Handler: registryapi.NewHandler(a.registry, opts), ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout: 5 * time.Minute, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	admSrv := &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	regLn, err := net.Listen("tcp", a.cfg.RegistryAddr)
	if err != nil {
		return fmt.Errorf("registry listener: %w", err)
	}
	admLn, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		regLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	a.registryAddr, a.adminAddr = regLn.Addr().String(), admLn.Addr().String()

	bg, bgCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	bgCtx, stopBg := context.WithCancel(bgCtx)
	bg.Go(func() error { return a.cas.Run(bgCtx) })
	bg.Go(func() error { return a.cas.RunScrub(bgCtx, scrubConfig(a.cfg.Cache, a.log.With("part", "scrub"))) })
	bg.Go(func() error { return a.outbox.Run(bgCtx) })
	if a.cluster != nil {
		if !a.embed.noOriginLocks {
			fetch.locker = a.lockService
			fetch.holders = a.memberPeers
			fetch.self = a.cluster.Self().Name
			fetch.yield = a.isGroupProxy
			if a.node != nil {
				lc := &linkClass{rate: func() float64 { return a.node.Downlink(p2p.DownlinkWindow) },
					members: a.cluster.Members, setTag: a.cluster.SetTag, log: a.log.With("part", "fetch")}
				fetch.slow = lc.slow
				bg.Go(func() error { return lc.run(bgCtx) })
			}
		}
		bg.Go(func() error { return a.cluster.Run(bgCtx) })
		bg.Go(func() error { return a.lockService.Run(bgCtx) })
		bg.Go(func() error { return a.connectMembers(bgCtx) })
	} else {
		bg.Go(func() error { return a.local.Run(bgCtx) })
	}
	if a.node != nil {
		bg.Go(func() error { return a.node.Run(bgCtx) })
		if err := a.provideCached(ctx); err != nil {
			a.log.Warn("announce cached blobs", "err", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(regSrv, regLn) })
	g.Go(func() error { return serve(admSrv, admLn) })
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-bgCtx.Done(): // a background part failed
		}
		close(a.draining)
		if err := a.notify.Stopping(); err != nil {
			a.log.Warn("systemd notify", "err", err)
		}
		drain := time.Duration(a.cfg.DrainTimeout)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		a.log.Info("draining", "timeout", drain.String())
		return errors.Join(regSrv.Shutdown(sctx), admSrv.Shutdown(sctx))
	})
	if a.cluster != nil {
		if err := a.awaitSerf(ctx, bgCtx); err != nil {
			stopBg() // the shutdown watcher sees it and stops the servers
			_ = g.Wait()
			_ = bg.Wait()
			return err
		}
	}
	a.readyOnce.Do(func() { close(a.ready) })
	if err := a.notify.Ready(); err != nil {
		a.log.Warn("systemd notify", "err", err)
	}
	_ = a.notify.Status("serving the OCI registry on " + a.registryAddr)
	bg.Go(func() error {
		return sdnotify.RunWatchdog(bgCtx, a.notify, func() bool { return bgCtx.Err() == nil })
	})
	a.log.Info("agent ready", "node", a.cfg.NodeName, "registry", a.registryAddr, "admin", a.adminAddr,
		"data_dir", a.cfg.DataDir, "origins", a.store.String(), "version", Version)
	err = g.Wait()
	stopFetches()
	fetch.Wait()
	stopBg()
	if berr := bg.Wait(); berr != nil && !errors.Is(berr, context.Canceled) {
		err = errors.Join(err, berr)
	}
	a.log.Info("agent stopped")
	return err
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openOrigins builds the object store chain from the configured URLs.
func (a *Agent) openOrigins(ctx context.Context) (objstore.Store, error) {
	var stores []objstore.Store
	a.originStats, _ = observe.NewMetrics(nil) // registered by newMetrics; cannot fail
	names := redactedOrigins(a.cfg.Origins)
	if a.embed.origin != nil {
		o := observe.New(a.embed.origin, a.embed.origin.String(), a.originStats)
		a.origins = append(a.origins, o)
		return o, nil
	}
	for i, raw := range a.cfg.Origins {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		var s objstore.Store
		switch u.Scheme {
		case "registry":
			continue // a read-only upstream, consulted by the registry after the stores
		case "file":
			s, err = filestore.New(u.Path)
		case "s3":
			opts := s3store.DefaultOptions()
			opts.CredentialsFile = a.cfg.OriginCredentials
			opts.Logger = a.log.With("part", "s3")
			s, err = s3store.New(ctx, raw, opts)
		default:
			err = fmt.Errorf("unsupported scheme %q", u.Scheme)
		}
		if err != nil {
			return nil, fmt.Errorf("origin %s: %w", redactedOrigins([]string{raw})[0], err)
		}
		o := observe.New(s, names[i], a.originStats)
		a.origins = append(a.origins, o)
		stores = append(stores, o)
	}
	switch len(stores) {
	case 0:
		return nil, errors.New("origins: at least one object store (file:// or s3://) is needed; registry:// origins are read-only")
	case 1:
		return stores[0], nil
	}
	return objstore.Chain(stores...), nil
}

// awaitSerf waits until serf runs and lists this node (with its bound
// gossip address), so readiness means the fleet can reach us.
func (a *Agent) awaitSerf(ctx, bgCtx context.Context) error {
	deadline := time.After(30 * time.Second)
	for {
		changed := a.cluster.Changed()
		for _, m := range a.cluster.Members() {
			if m.Name == a.cfg.NodeName {
				return nil
			}
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-bgCtx.Done():
			return fmt.Errorf("start: %w", context.Cause(bgCtx))
		case <-deadline:
			return errors.New("serf did not start within 30s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// onCacheChange announces added blobs to peers, withdraws removed ones,
// and counts evictions.
func (a *Agent) onCacheChange(e cas.Event) {
	switch e.Kind {
	case cas.Added:
		if a.node != nil {
			if err := a.node.Provide(context.Background(), e.Digest); err != nil {
				a.log.Warn("announce blob", "digest", e.Digest, "err", err)
			}
		}
	case cas.Removed:
		if a.node != nil {
			a.node.Withdraw(e.Digest)
		}
		if f := a.fetch.Load(); f != nil {
			f.endLinger(e.Digest) // a late host must not be sent here for it
		}
		if e.Evicted && a.metrics != nil {
			a.metrics.evictions.Inc()
		}
	}
}

// openP2P starts the libp2p host and DHT (it serves once Run runs).
func (a *Agent) openP2P(ctx context.Context) (*p2p.Node, error) {
	pcfg := p2p.DefaultConfig()
	pcfg.ListenAddrs = a.cfg.P2P.Listen
	pcfg.Bootstrap = a.cfg.P2P.Bootstrap
	pcfg.SwarmKeyFile = a.cfg.P2P.SwarmKeyFile
	pcfg.IdentityFile = filepath.Join(a.cfg.DataDir, "p2p", "identity.key")
	pcfg.Logger = a.log.With("part", "p2p")
	pcfg.SameGroup = a.sameGroup
	if a.cfg.Serf.Enabled && a.cfg.Serf.KeyringFile != "" { // without a key anyone can join serf
		a.gater = newMemberGater(a.cfg.P2P.Bootstrap, a.log.With("part", "gater"))
		pcfg.ConnectionGater = a.gater
	}
	if a.embed.p2p != nil {
		a.embed.p2p(&pcfg)
	}
	a.chunkSize = pcfg.Download.ChunkSize
	if err := os.MkdirAll(filepath.Dir(pcfg.IdentityFile), 0o700); err != nil {
		return nil, fmt.Errorf("p2p identity dir: %w", err)
	}
	n, err := p2p.New(ctx, pcfg, peerSource{a.cas})
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	n.SetUploadSlots(uploadSlots)
	return n, nil
}

// provideCached announces every cached blob (after a restart).
func (a *Agent) provideCached(ctx context.Context) error {
	return a.cas.Walk(ctx, func(info cas.Info) error {
		return a.node.Provide(ctx, info.Digest)
	})
}

// onReplicated marks a blob evictable once the object store has it.
func (a *Agent) onReplicated(it outbox.Item) {
	if it.Blob == "" || it.Delete {
		return
	}
	if _, queued := a.outbox.Latest(it.Key); queued {
		return // a later item for the same key is still pending
	}
	if err := a.cas.SetState(context.Background(), it.Blob, cas.StateReplicated); err != nil && !errors.Is(err, cas.ErrNotFound) {
		a.log.Warn("mark replicated", "digest", it.Blob, "err", err)
	}
}

// requeueLocal queues every local-only blob that no queued item covers:
// after a crash between commit and enqueue, nothing stays unreplicated.
func (a *Agent) requeueLocal(ctx context.Context) error {
	var missing []outbox.Item
	err := a.cas.Walk(ctx, func(info cas.Info) error {
		if info.State != cas.StateLocal {
			return nil
		}
		key := objstore.BlobKey(info.Digest)
		if _, queued := a.outbox.Latest(key); !queued {
			missing = append(missing, outbox.Item{Key: key, Blob: info.Digest})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan cache: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	a.log.Info("requeueing unreplicated blobs", "count", len(missing))
	_, err = a.outbox.Enqueue(ctx, missing...)
	return err
}

// casSource lets the outbox read local blobs.
type casSource struct{ cas *cas.Store }

func (s casSource) OpenBlob(ctx context.Context, d digest.Digest) (rc io.ReadCloser, size int64, err error) {
	f, info, err := openVerified(ctx, s.cas, slog.New(slog.DiscardHandler), d)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", outbox.ErrSourceGone, d)
	}
	if err != nil {
		return nil, 0, err
	}
	return f, info.Size, nil
}
