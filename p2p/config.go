package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// ListenAddrs are the multiaddrs the host listens on. Default:
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1. QUIC
	// addresses are dropped (with a warning) when SwarmKeyFile is set,
	// because go-libp2p refuses QUIC on a private network.
	ListenAddrs []string
	// Bootstrap are peer multiaddrs ending in /p2p/<id> to join the DHT
	// through. Default: none (there are never public bootstrap peers).
	Bootstrap []string
	// IdentityFile holds the node's private key (libp2p protobuf encoding).
	// It is created with a new Ed25519 key if missing. Empty means an
	// ephemeral identity.
	IdentityFile string
	// SwarmKeyFile is an optional libp2p private-network key
	// ("/key/swarm/psk/1.0.0/" format). Peers without it cannot connect.
	SwarmKeyFile string
	// ReprovideInterval is how often the whole set of provided blobs is
	// announced again. Default 1h. Provider records are kept by other
	// peers for three intervals, so withdrawn blobs age out after that.
	ReprovideInterval time.Duration
	// ReprovideBatchSize caps how many blobs one reprovide batch announces.
	// Default 256.
	ReprovideBatchSize int
	// ProvideConcurrency is how many DHT provides run at once. Default 32.
	ProvideConcurrency int
	// DHTConcurrency is how many peers one DHT lookup asks at once (alpha
	// in the Kademlia paper). Default 3: a fleet's DHT answers in
	// milliseconds, and the public network's 10 made every lookup ask
	// twice the peers (a quarter of a 100-host simulated fleet's CPU went
	// to lookups; docs/BENCHMARKS.md). 0 means the default.
	DHTConcurrency int
	// FindTimeout bounds one FindProviders lookup. Default 5s.
	FindTimeout time.Duration
	// FindGrace is how long FindProviders keeps collecting after the first
	// provider arrived, before returning early. Default 100ms.
	FindGrace time.Duration
	// Download holds the defaults for Download and Fetch.
	Download DownloadOptions
	// Probe configures the active latency and throughput probes.
	Probe ProbeOptions
	// SameGroup, if set, reports whether a peer is in this node's group
	// (the agent answers from serf membership); such peers win ties when
	// sources are ranked. It must be cheap and safe for concurrent use.
	SameGroup func(peer.ID) bool
	// ConnectionGater, if set, admits or refuses peers (the serf membership
	// gater fills it).
	ConnectionGater connmgr.ConnectionGater
	// Host, if set, is used instead of building a libp2p host from
	// ListenAddrs, IdentityFile, SwarmKeyFile and ConnectionGater (which are
	// then ignored): the simulator passes hosts of a simulated network. The
	// node owns it and closes it.
	Host host.Host
	// Logger receives the node's logs; nil means silent.
	Logger *slog.Logger
}

// defaultDHTConcurrency is Config.DHTConcurrency's default.
const defaultDHTConcurrency = 3

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:        []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		ReprovideInterval:  time.Hour,
		ReprovideBatchSize: 256,
		ProvideConcurrency: 32,
		DHTConcurrency:     defaultDHTConcurrency,
		FindTimeout:        5 * time.Second,
		FindGrace:          100 * time.Millisecond,
		Download:           DefaultDownloadOptions(),
		Probe:              DefaultProbeOptions(),
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if len(c.ListenAddrs) == 0 && c.Host == nil {
		errs = append(errs, errors.New("no listen addresses"))
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen address %q: %w", a, err))
		}
	}
	for _, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			errs = append(errs, fmt.Errorf("bootstrap address %q: %w", a, err))
		}
	}
	if c.ReprovideInterval <= 0 {
		errs = append(errs, errors.New("reprovide interval must be positive"))
	}
	if c.ReprovideBatchSize <= 0 {
		errs = append(errs, errors.New("reprovide batch size must be positive"))
	}
	if c.ProvideConcurrency <= 0 {
		errs = append(errs, errors.New("provide concurrency must be positive"))
	}
	if c.DHTConcurrency < 0 {
		errs = append(errs, errors.New("DHT concurrency must not be negative"))
	}
	if c.FindTimeout <= 0 {
		errs = append(errs, errors.New("find timeout must be positive"))
	}
	if c.FindGrace < 0 {
		errs = append(errs, errors.New("find grace must not be negative"))
	}
	if err := c.Download.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p config: %w", err)
	}
	return nil
}

// ProbeOptions configure the prober (DESIGN §5): every peer gets a ping
// (RTT) and a small test download (throughput) at most once per Interval,
// jittered, within a global budget of probes and bytes per second. Peers
// that were recently candidate sources of a download are probed first;
// other idle peers only with what the budget leaves.
type ProbeOptions struct {
	// Interval is how often one peer is probed at most. Zero turns
	// scheduled probes off (on-demand probes still run). Default 1m.
	Interval time.Duration
	// Jitter spreads each peer's next probe uniformly over
	// Interval·(1±Jitter). Default 0.2.
	Jitter float64
	// Bytes is the size of one test download. Default 256 KiB; at most
	// MaxProbeBytes.
	Bytes int64
	// Rate is the budget of probes (one peer measured) per second, burst
	// included. Default 1.
	Rate float64
	// ByteRate is the budget of test download bytes per second. A probe
	// that finds no bytes in the budget only pings. Default 64 KiB/s.
	ByteRate float64
	// Burst is how many seconds of budget may accumulate. Default 2.
	Burst float64
	// Timeout bounds one probe. Default 5s.
	Timeout time.Duration
	// Concurrency is how many probes run at once. Default 4.
	Concurrency int
	// OnDemandSize: before a download of at least this many bytes, the
	// candidates without a fresh throughput measurement are probed (the
	// budget may go into debt for them; later scheduled probes pay it
	// back). Default 64 MiB.
	OnDemandSize int64
	// OnDemandWait is how long a download waits for on-demand probes; a
	// probe still running then reports the rate it saw so far. Default
	// 300ms.
	OnDemandWait time.Duration
	// Fresh is how long a throughput measurement counts as fresh.
	// Default 2m.
	Fresh time.Duration
	// WantedFor is how long a peer counts as wanted after it was a
	// candidate source of a download. Default 10m.
	WantedFor time.Duration
}

// DefaultProbeOptions returns the production defaults.
func DefaultProbeOptions() ProbeOptions {
	return ProbeOptions{
		Interval:     time.Minute,
		Jitter:       0.2,
		Bytes:        256 << 10,
		Rate:         1,
		ByteRate:     64 << 10,
		Burst:        2,
		Timeout:      5 * time.Second,
		Concurrency:  4,
		OnDemandSize: 64 << 20,
		OnDemandWait: 300 * time.Millisecond,
		Fresh:        2 * time.Minute,
		WantedFor:    10 * time.Minute,
	}
}

// Validate reports an option error.
func (o ProbeOptions) Validate() error {
	var errs []error
	if o.Interval < 0 {
		errs = append(errs, errors.New("probe interval must not be negative"))
	}
	if o.Jitter < 0 || o.Jitter >= 1 {
		errs = append(errs, errors.New("probe jitter must be in [0, 1)"))
	}
	if o.Bytes < 0 || o.Bytes > MaxProbeBytes {
		errs = append(errs, fmt.Errorf("probe bytes must be in 0..%d", MaxProbeBytes))
	}
	if o.Rate <= 0 || o.ByteRate < 0 || o.Burst < 1 {
		errs = append(errs, errors.New("probe rate must be positive, byte rate not negative, burst at least 1s"))
	}
	if o.Timeout <= 0 || o.OnDemandWait <= 0 || o.Fresh <= 0 || o.WantedFor <= 0 || o.Concurrency <= 0 {
		errs = append(errs, errors.New("probe timeout, on-demand wait, fresh, wanted-for and concurrency must be positive"))
	}
	if o.OnDemandSize < 0 {
		errs = append(errs, errors.New("probe on-demand size must not be negative"))
	}
	return errors.Join(errs...)
}
