package locks

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Config configures a [Cluster].
type Config struct {
	// NodeName is unique in the fleet. Default: the host name.
	NodeName string
	// Group is the member's group, e.g. a rack or zone. Default: "default".
	Group string
	// BindAddr is the gossip address, host:port. Default: "0.0.0.0:7946".
	BindAddr string
	// AdvertiseAddr is the address other members reach us at, host:port.
	// Default: derived from BindAddr.
	AdvertiseAddr string
	// Join lists members to join, host:port. Empty: start a new cluster.
	Join []string
	// JoinRetry is the pause between join attempts. Default: 1s.
	JoinRetry time.Duration
	// KeyringFile is a JSON list of base64 gossip keys, the first one
	// primary (serf's keyring format). Empty: gossip is not encrypted.
	KeyringFile string
	// ProxyEligible lets the member act as its group's proxy. Default: true.
	ProxyEligible bool
	// ProxyWarmup is how long an eligible member waits, once it has joined,
	// before it advertises itself as a proxy candidate. Until the fleet has
	// seen it alive (a restarted member may still be thought failed), it
	// would otherwise take lock space that another proxy still serves.
	// Default: 5s.
	ProxyWarmup time.Duration
	// Priority orders proxy candidates, highest first. Default: 0.
	Priority int
	// PeerID is the member's libp2p peer ID, advertised in tags.
	PeerID string
	// PeerAddrs are the member's libp2p addresses, advertised in tags.
	PeerAddrs []string
	// Tags are extra tags to advertise. Keys starting "shoal." are reserved.
	Tags map[string]string
	// Logger receives serf and memberlist logs. Default: discard.
	Logger *slog.Logger
	// Memberlist holds base memberlist settings: timers and transport.
	// Name, addresses, keyring and logger are set from this Config.
	// Default: memberlist.DefaultLANConfig().
	Memberlist *memberlist.Config
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:      host,
		Group:         "default",
		BindAddr:      "0.0.0.0:7946",
		JoinRetry:     time.Second,
		ProxyEligible: true,
		ProxyWarmup:   5 * time.Second,
		Memberlist:    memberlist.DefaultLANConfig(),
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("cluster config: empty node name")
	}
	if c.Group == "" {
		return errors.New("cluster config: empty group")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("cluster config: bind: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("cluster config: advertise: %w", err)
		}
	}
	if c.ProxyWarmup < 0 {
		return fmt.Errorf("cluster config: proxy warm-up %v", c.ProxyWarmup)
	}
	if c.JoinRetry <= 0 {
		return fmt.Errorf("cluster config: join retry %v", c.JoinRetry)
	}
	if c.Memberlist == nil {
		return errors.New("cluster config: nil memberlist config")
	}
	return nil
}

func splitHostPort(a string) (string, int, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", a, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", a)
	}
	return host, p, nil
}

// Cluster is this member's view of the fleet over serf. It implements
// [Membership].
type Cluster struct {
	cfg     Config
	logger  *slog.Logger
	changes notifier

	// advertising serializes serf.SetTags, which is not safe to call
	// concurrently, and keeps a stale set from overwriting a newer one.
	advertising sync.Mutex

	mu      sync.Mutex
	serf    *serf.Serf
	members []Member
	tags    map[string]string // set by SetTag
	warm    bool              // the proxy warm-up is over
}

var (
	_ Membership = (*Cluster)(nil)
	_ TagSetter  = (*Cluster)(nil)
)

// New checks cfg and returns a Cluster; it starts nothing until [Cluster.Run].
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Cluster{cfg: cfg, logger: logger}, nil
}

// Self returns the local member: as serf sees it once it runs, else as
// configured.
func (c *Cluster) Self() Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.IndexFunc(c.members, func(x Member) bool { return x.Name == c.cfg.NodeName }); i >= 0 {
		return c.members[i]
	}
	return c.configured()
}

// configured returns the local member as configured, with the tags set
// since. Callers hold c.mu.
func (c *Cluster) configured() Member {
	m := Member{
		Name: c.cfg.NodeName, Status: StatusAlive, Addr: c.cfg.AdvertiseAddr,
		Group: c.cfg.Group, ProxyEligible: c.cfg.ProxyEligible && (c.warm || c.cfg.ProxyWarmup == 0), Priority: c.cfg.Priority,
		PeerID: c.cfg.PeerID, PeerAddrs: c.cfg.PeerAddrs,
	}
	m.Tags = encodeTags(m, c.extraTags())
	return m
}

// extraTags merges the configured tags and those set since. Callers hold c.mu.
func (c *Cluster) extraTags() map[string]string {
	tags := make(map[string]string, len(c.cfg.Tags)+len(c.tags))
	for k, v := range c.cfg.Tags {
		tags[k] = v
	}
	for k, v := range c.tags {
		tags[k] = v
	}
	return tags
}

// SetTag sets one of the local member's tags and advertises it if serf is
// running.
func (c *Cluster) SetTag(key, value string) error {
	c.mu.Lock()
	if c.tags == nil {
		c.tags = make(map[string]string)
	}
	c.tags[key] = value
	c.mu.Unlock()
	if err := c.advertise(); err != nil {
		return fmt.Errorf("set tag %s: %w", key, err)
	}
	return nil
}

// advertise sends the local member's current tags through serf, if it
// runs, one call at a time.
func (c *Cluster) advertise() error {
	c.advertising.Lock()
	defer c.advertising.Unlock()
	c.mu.Lock()
	s, tags := c.serf, c.configured().Tags
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.SetTags(tags)
}

// Members returns every known member, sorted by name; empty before Run.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// Changed returns a channel closed at the next membership change.
func (c *Cluster) Changed() <-chan struct{} { return c.changes.wait() }

// Proxy returns the current proxy of group.
func (c *Cluster) Proxy(group string) (Member, bool) { return Proxy(c.Members(), group) }

func (c *Cluster) serfConfig(events chan serf.Event) (*serf.Config, error) {
	ml := *c.cfg.Memberlist
	ml.Name = c.cfg.NodeName
	host, port, err := splitHostPort(c.cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	ml.BindAddr, ml.BindPort = host, port
	if c.cfg.AdvertiseAddr != "" {
		if ml.AdvertiseAddr, ml.AdvertisePort, err = splitHostPort(c.cfg.AdvertiseAddr); err != nil {
			return nil, err
		}
	}
	std := newStdLogger(c.logger)
	ml.LogOutput, ml.Logger = nil, std
	if c.cfg.KeyringFile != "" {
		if ml.Keyring, err = loadKeyring(c.cfg.KeyringFile); err != nil {
			return nil, err
		}
	}
	conf := serf.DefaultConfig()
	conf.NodeName = c.cfg.NodeName
	c.mu.Lock()
	conf.Tags = c.configured().Tags
	c.mu.Unlock()
	conf.EventCh = events
	conf.MemberlistConfig = &ml
	conf.LogOutput, conf.Logger = nil, std
	conf.KeyringFile = c.cfg.KeyringFile
	// Leaving waits this long for the leave to spread before shutdown.
	conf.LeavePropagateDelay = 5 * ml.GossipInterval
	return conf, nil
}

// loadKeyring reads a serf keyring file: a JSON list of base64 keys.
func loadKeyring(path string) (*memberlist.Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(b, &encoded); err != nil {
		return nil, fmt.Errorf("parse keyring %s: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("keyring %s: no keys", path)
	}
	keys := make([][]byte, len(encoded))
	for i, e := range encoded {
		if keys[i], err = base64.StdEncoding.DecodeString(e); err != nil {
			return nil, fmt.Errorf("keyring %s key %d: %w", path, i, err)
		}
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// Run starts serf, joins the configured members (retrying until one
// answers), tracks membership until ctx ends, then leaves gracefully.
func (c *Cluster) Run(ctx context.Context) error {
	events := make(chan serf.Event, 256)
	conf, err := c.serfConfig(events)
	if err != nil {
		return err
	}
	s, err := serf.Create(conf)
	if err != nil {
		return fmt.Errorf("start serf: %w", err)
	}
	c.mu.Lock()
	c.serf = s
	c.mu.Unlock()
	c.refresh(s)

	var wg sync.WaitGroup
	joinCtx, stopJoin := context.WithCancel(ctx)
	joined := make(chan struct{})
	if len(c.cfg.Join) > 0 {
		wg.Go(func() { c.join(joinCtx, s, joined) })
	} else {
		close(joined)
	}
	defer func() {
		stopJoin()
		wg.Wait()
		if err := s.Leave(); err != nil {
			c.logger.Warn("leave cluster", "err", err)
		}
		if err := s.Shutdown(); err != nil {
			c.logger.Warn("shut down serf", "err", err)
		}
	}()
	var warmup <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ShutdownCh():
			return errors.New("serf shut down")
		case <-joined:
			joined = nil
			if c.cfg.ProxyEligible && c.cfg.ProxyWarmup > 0 {
				warmup = time.After(c.cfg.ProxyWarmup)
			}
		case <-warmup:
			warmup = nil
			c.mu.Lock()
			c.warm = true
			c.mu.Unlock()
			if err := c.advertise(); err != nil {
				c.logger.Warn("advertise proxy eligibility", "err", err)
			}
		case e := <-events:
			// One refresh for every member event already queued: each
			// copies the whole member list, and a fleet's tag updates
			// come in bursts (hundreds of members, each refreshing).
			_, member := e.(serf.MemberEvent)
			for more := true; more; {
				select {
				case e := <-events:
					if _, ok := e.(serf.MemberEvent); ok {
						member = true
					}
				default:
					more = false
				}
			}
			if member {
				c.refresh(s)
			}
		}
	}
}

func (c *Cluster) join(ctx context.Context, s *serf.Serf, joined chan<- struct{}) {
	for {
		n, err := s.Join(c.cfg.Join, true)
		if err == nil || n > 0 {
			c.logger.Info("joined cluster", "contacted", n)
			close(joined)
			return
		}
		c.logger.Warn("join cluster", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.JoinRetry):
		}
	}
}

func (c *Cluster) refresh(s *serf.Serf) {
	sm := s.Members()
	members := make([]Member, 0, len(sm))
	for _, m := range sm {
		members = append(members, fromSerf(m))
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	c.mu.Lock()
	c.members = members
	c.mu.Unlock()
	c.changes.notify()
}

func fromSerf(m serf.Member) Member {
	out := Member{Name: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port)))}
	switch m.Status {
	case serf.StatusAlive:
		out.Status = StatusAlive
	case serf.StatusLeaving:
		out.Status = StatusLeaving
	case serf.StatusLeft:
		out.Status = StatusLeft
	case serf.StatusFailed:
		out.Status = StatusFailed
	}
	decodeTags(&out, m.Tags)
	return out
}
