package agent

import (
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// embedding holds what a program that runs agents in its own process (the
// simulator) substitutes for the parts an agent normally builds itself.
type embedding struct {
	p2p           func(*p2p.Config)
	cluster       func(*locks.Config)
	origin        objstore.Store
	noOriginLocks bool
}

// WithP2PConfig adjusts the p2p node's configuration after the agent has
// filled it from its own: the simulator sets a simulated libp2p host
// (p2p.Config.Host) and transfer options there.
func WithP2PConfig(f func(*p2p.Config)) Option {
	return func(a *Agent) { a.embed.p2p = f }
}

// WithClusterConfig adjusts the serf cluster's configuration after the agent
// has filled it: the simulator sets an in-memory memberlist transport there.
func WithClusterConfig(f func(*locks.Config)) Option {
	return func(a *Agent) { a.embed.cluster = f }
}

// WithOriginStore makes s the agent's object store instead of the stores
// named by the configured origins (registry:// origins still apply).
func WithOriginStore(s objstore.Store) Option {
	return func(a *Agent) { a.embed.origin = s }
}

// WithoutOriginLocks turns off the once-per-group origin lock: a host that
// finds no peer reads the origin at once. It exists for the simulator's
// baselines; a real fleet always wants the lock.
func WithoutOriginLocks() Option {
	return func(a *Agent) { a.embed.noOriginLocks = true }
}
