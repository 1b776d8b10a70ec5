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
	// FindTimeout bounds one FindProviders lookup. Default 5s.
	FindTimeout time.Duration
	// FindGrace is how long FindProviders keeps collecting after the first
	// provider arrived, before returning early. Default 100ms.
	FindGrace time.Duration
	// Download holds the defaults for Download and Fetch.
	Download DownloadOptions
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

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:        []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		ReprovideInterval:  time.Hour,
		ReprovideBatchSize: 256,
		ProvideConcurrency: 32,
		FindTimeout:        5 * time.Second,
		FindGrace:          100 * time.Millisecond,
		Download:           DefaultDownloadOptions(),
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
	if c.FindTimeout <= 0 {
		errs = append(errs, errors.New("find timeout must be positive"))
	}
	if c.FindGrace < 0 {
		errs = append(errs, errors.New("find grace must not be negative"))
	}
	if err := c.Download.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p config: %w", err)
	}
	return nil
}
