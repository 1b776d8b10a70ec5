package locks

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LocalConfig configures a [Local] locker.
type LocalConfig struct {
	// Node names the holder in leases. Default: "local".
	Node string
	// DefaultTTL applies when AcquireOptions.TTL is zero. Default: 10s.
	DefaultTTL time.Duration
	// TickInterval is how often expired leases are swept. Default: 100ms.
	TickInterval time.Duration
	// Logger receives lease events. Default: discard.
	Logger *slog.Logger
	// Registerer, if set, receives the lock metrics.
	Registerer prometheus.Registerer
}

// DefaultLocalConfig returns a LocalConfig with every default filled in.
func DefaultLocalConfig() LocalConfig {
	return LocalConfig{Node: "local", DefaultTTL: 10 * time.Second, TickInterval: 100 * time.Millisecond}
}

// Validate reports the first invalid setting.
func (c LocalConfig) Validate() error {
	if c.Node == "" || c.DefaultTTL <= 0 || c.TickInterval <= 0 {
		return errors.New("local locker config: node, default TTL and tick interval are required")
	}
	return nil
}

// Local is an in-memory [Locker] for one process: a single-host agent, tests
// and the simulator. Run must be running for expired leases to free waiters.
type Local struct {
	cfg     LocalConfig
	srv     *tableServer
	metrics *metrics
	logger  *slog.Logger
}

var _ Locker = (*Local)(nil)

// NewLocal returns a Local locker.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, logger, err := lockerBase(cfg.Registerer, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &Local{cfg: cfg, srv: newTableServer(), metrics: m, logger: logger}, nil
}

// Run sweeps expired leases until ctx ends.
func (l *Local) Run(ctx context.Context) error {
	l.srv.run(ctx, l.cfg.TickInterval)
	return nil
}

// Acquire takes the lock name.
func (l *Local) Acquire(ctx context.Context, name string, opts AcquireOptions) (*Lease, error) {
	if opts.TTL == 0 {
		opts.TTL = l.cfg.DefaultTTL
	}
	return acquire(ctx, l.cfg.Node, name, opts, l.srv.acquire, localBackend{l.srv}, l.metrics, l.logger)
}

type localBackend struct{ srv *tableServer }

func (b localBackend) renew(_ context.Context, g Grant) error {
	_, err := b.srv.renew(g)
	return err
}

func (b localBackend) release(_ context.Context, g Grant) error { return b.srv.release(g) }

// lockerBase prepares what every locker has: its metrics on reg, and its
// logger (silent when nil).
func lockerBase(reg prometheus.Registerer, logger *slog.Logger) (*metrics, *slog.Logger, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return m, logger, nil
}
