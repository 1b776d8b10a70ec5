package p2p

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/provider"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	libp2pyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Protocol IDs. The DHT speaks /shoal/kad/1.0.0.
const (
	// DHTPrefix is the Kademlia protocol prefix of the fleet's private DHT.
	DHTPrefix = "/shoal"
	// BlobProtocol carries HTTP/1.1 for the blob and probe endpoints.
	BlobProtocol = "/shoal/blob/1.0.0"
)

// Sentinel errors.
var (
	// ErrNotFound: the blob is not there (BlobSource implementations wrap it).
	ErrNotFound = errors.New("p2p: blob not found")
	// ErrNoProviders: no usable provider is left for a download.
	ErrNoProviders = errors.New("p2p: no usable provider")
	// ErrCorrupt: every attempt of a fetch failed verification.
	ErrCorrupt = errors.New("p2p: downloaded bytes did not verify")
	// ErrClosed: the node is closed.
	ErrClosed = errors.New("p2p: node closed")
)

// Node is a Shoal peer: libp2p host, DHT content routing, blob server and
// downloader. Safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	src    BlobSource
	host   host.Host
	dht    *dht.IpfsDHT
	prov   provider.System
	ln     net.Listener
	server *http.Server
	mux    *http.ServeMux // the peer-facing routes; Handle adds more
	client *http.Client

	seed maphash.Seed // keys chunk hashes (see ChunkSource)

	mu   sync.Mutex
	keys map[string]cid.Cid // provided blobs, by multihash bytes
	// announcing marks keys whose announcement is queued or done (until
	// it fails or the key is withdrawn): a second Provide is a no-op.
	announcing map[string]bool
	scores     *Scores
	fetched    map[peer.ID]int64
	slots      uploadSlots
	rx         rateMeter    // swarm bytes received
	pending    atomic.Int64 // swarm bytes asked for, not yet received
	// dl caches Downlink(DownlinkWindow) for downlinkFull (see downlink).
	dlMu   sync.Mutex
	dl     float64
	dlAt   time.Time
	spread spread
	pex    pexBook
	ids    idCache
	// copyBufs are the buffers blob responses and swarm chunks are
	// copied through (copyBuf).
	copyBufs sync.Pool

	prober     *prober
	probes     atomic.Int64 // probes made (scheduled, on demand and Probe)
	probeBytes atomic.Int64 // test download bytes received

	served      atomic.Int64
	uploads     atomic.Int64
	announced   atomic.Int64
	announceErr atomic.Int64

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// New builds the node: host, DHT and provider system are started, so ID
// and Addrs are valid; Run joins the network and serves peers. src serves
// this node's blobs to peers. On error nothing is left running.
func New(ctx context.Context, cfg Config, src BlobSource) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("p2p: nil blob source")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:        cfg,
		log:        logger,
		src:        src,
		keys:       make(map[string]cid.Cid),
		announcing: make(map[string]bool),
		scores:     NewScores(),
		fetched:    make(map[peer.ID]int64),
		closed:     make(chan struct{}),
		seed:       maphash.MakeSeed(),
	}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()

	if cfg.Host != nil {
		n.host = cfg.Host
	} else if n.host, err = newHost(cfg, logger); err != nil {
		return nil, err
	}
	ensurePing(n.host)
	n.prober = newProber(n, cfg.Probe, time.Now())

	bootstrap, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	alpha := cfg.DHTConcurrency
	if alpha <= 0 {
		alpha = defaultDHTConcurrency
	}
	n.dht, err = dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix),
		dht.BootstrapPeers(bootstrap...),
		dht.DisableValues(),
		dht.ProviderManagerOpts(records.ProvideValidity(3*cfg.ReprovideInterval)),
		dht.Concurrency(alpha),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: dht: %w", err)
	}

	n.prov, err = provider.New(dssync.MutexWrap(datastore.NewMapDatastore()),
		provider.Online(announcer{n: n}),
		provider.KeyProvider(n.providedKeys),
		provider.ReproviderInterval(cfg.ReprovideInterval),
		provider.MaxBatchSize(uint(cfg.ReprovideBatchSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: provider system: %w", err)
	}

	if n.ln, err = gostream.Listen(n.host, BlobProtocol); err != nil {
		return nil, fmt.Errorf("p2p: blob listener: %w", err)
	}
	n.server = &http.Server{
		Handler:           n.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	n.client = newPeerClient(n.host)
	logger.Info("p2p node started", "id", n.host.ID(), "addrs", n.Addrs())
	return n, nil
}

// newHost builds the production libp2p host: TLS and Noise, yamux, TCP and
// (without a swarm key) QUIC, no relay.
func newHost(cfg Config, logger *slog.Logger) (host.Host, error) {
	key, err := loadIdentity(cfg.IdentityFile)
	if err != nil {
		return nil, err
	}
	psk, err := loadSwarmKey(cfg.SwarmKeyFile)
	if err != nil {
		return nil, err
	}
	listen := cfg.ListenAddrs
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(libp2pyamux.ID, yamuxTransport()),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.SwarmOpts(swarm.WithDialRanker(preferTCP)),
	}
	if psk != nil {
		listen = tcpOnly(listen)
		if len(listen) < len(cfg.ListenAddrs) {
			logger.Warn("private network key set: QUIC listen addresses dropped", "kept", listen)
		}
		if len(listen) == 0 {
			return nil, errors.New("p2p: private network needs a TCP listen address")
		}
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if cfg.ConnectionGater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.ConnectionGater))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}
	return h, nil
}

func tcpOnly(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			continue
		}
		if _, err := m.ValueForProtocol(ma.P_TCP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	infos := make([]peer.AddrInfo, 0, len(addrs))
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("p2p: bootstrap %q: %w", a, err)
		}
		infos = append(infos, *ai)
	}
	return infos, nil
}

// Run serves peers and joins the DHT through the bootstrap peers until ctx
// ends, then closes the node. It returns nil when ctx ends.
func (n *Node) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		if cerr := n.Close(); err == nil {
			err = cerr
		}
		wg.Wait()
	}()
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- n.server.Serve(n.ln) })
	bootstrap, _ := parseBootstrap(n.cfg.Bootstrap) // validated in New
	wg.Go(func() { n.bootstrap(ctx, bootstrap) })
	wg.Go(func() { n.prober.run(ctx) })

	select {
	case <-ctx.Done():
		return nil
	case <-n.closed:
		return nil
	case err := <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("p2p: serve blobs: %w", err)
	}
}

// bootstrap connects to the bootstrap peers, retrying with backoff until
// one answers, then refreshes the routing table.
func (n *Node) bootstrap(ctx context.Context, peers []peer.AddrInfo) {
	if len(peers) == 0 {
		return
	}
	backoff := 250 * time.Millisecond
	for {
		ok := 0
		for _, ai := range peers {
			if ai.ID == n.host.ID() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.host.Connect(cctx, ai)
			cancel()
			if err != nil {
				n.log.Debug("bootstrap peer unreachable", "peer", ai.ID, "err", err)
				continue
			}
			ok++
		}
		if ok > 0 {
			if err := n.dht.Bootstrap(ctx); err != nil {
				n.log.Warn("dht bootstrap", "err", err)
			}
			n.log.Info("joined the dht", "bootstrap_peers", ok)
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.closed:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Close stops serving, announcing and routing, and closes the host. Run
// calls it on return; calling it again is harmless.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.closed)
		var errs []error
		if n.server != nil {
			errs = append(errs, ignoreClosed(n.server.Close()))
		}
		if n.ln != nil {
			errs = append(errs, ignoreClosed(n.ln.Close()))
		}
		if n.client != nil {
			n.client.CloseIdleConnections()
		}
		if n.prov != nil {
			errs = append(errs, n.prov.Close())
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.prober != nil {
			n.prober.close() // probes end with the host
		}
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("p2p: close: %w", err)
		}
	})
	return n.closeErr
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs are the node's listen addresses as full multiaddrs ending in
// /p2p/<id>, suitable as another node's Bootstrap entries.
func (n *Node) Addrs() []string {
	ai := peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
	mas, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	out := make([]string, len(mas))
	for i, m := range mas {
		out[i] = m.String()
	}
	return out
}

// Host exposes the libp2p host (for the serf gater and the lock RPC).
func (n *Node) Host() host.Host { return n.host }

// Connect dials a peer given as a multiaddr ending in /p2p/<id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("connect %q: %w", addr, err)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	return nil
}

// Ready reports whether the DHT routing table has at least one peer, so
// lookups and announcements can reach the network.
func (n *Node) Ready() bool { return n.dht.RoutingTable().Size() > 0 }

// addProviderAddrs remembers providers' addresses long enough to dial them.
func (n *Node) addProviderAddrs(providers []peer.AddrInfo) {
	for _, ai := range providers {
		if len(ai.Addrs) > 0 && ai.ID != n.host.ID() {
			n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		}
	}
}

// hostOf formats a peer ID as a URL host: the lowercase base32 CID form,
// which survives host-name canonicalisation.
func hostOf(p peer.ID) string { return strings.ToLower(peer.ToCid(p).String()) }
