package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable is returned by New when this machine or user cannot create
// network namespaces (not root, no `ip` or `tc`, or `ip netns add` refused).
var ErrUnavailable = errors.New("network namespaces unavailable")

// Mbit is one megabit per second, the unit of Config.Bandwidth.
const Mbit int64 = 1_000_000

// maxHosts bounds Config.Hosts: host i gets 10.213.X.(10+i).
const maxHosts = 200

// closeTimeout bounds everything Close does.
const closeTimeout = 30 * time.Second

// Config describes a Network.
type Config struct {
	// Hosts is the number of host namespaces (1–200).
	Hosts int
	// Bandwidth caps each host's link in each direction, in bits per second
	// (e.g. 200*Mbit); 0 leaves the links unshaped.
	Bandwidth int64
	// Prefix starts every name the network creates: 1–6 lowercase letters
	// or digits. Stale namespaces are looked for under this prefix only.
	Prefix string
}

// DefaultConfig returns four unshaped hosts under the prefix "shoal".
func DefaultConfig() Config {
	return Config{
		Hosts:     4,       // enough for one pusher and a swarm of pullers
		Bandwidth: 0,       // unshaped: veths run at memory speed
		Prefix:    "shoal", // names: shoal-<pid>-<id>-h0, root veth shoal<id>
	}
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]{1,6}$`)

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.Hosts < 1 || c.Hosts > maxHosts {
		errs = append(errs, fmt.Errorf("hosts: %d, want 1–%d", c.Hosts, maxHosts))
	}
	if c.Bandwidth < 0 {
		errs = append(errs, fmt.Errorf("bandwidth: %d bit/s is negative", c.Bandwidth))
	} else if c.Bandwidth > 0 && c.Bandwidth < 100_000 {
		errs = append(errs, fmt.Errorf("bandwidth: %d bit/s, want at least 100 kbit/s or 0 (unshaped)", c.Bandwidth))
	}
	if !prefixRE.MatchString(c.Prefix) {
		errs = append(errs, fmt.Errorf("prefix: %q, want 1–6 lowercase letters or digits", c.Prefix))
	}
	return errors.Join(errs...)
}

// Network is a bridge in a hub namespace, one namespace per host linked to
// it, and a veth from the root namespace for the test process.
type Network struct {
	cfg      Config
	tools    tools
	id       string // random, 8 hex digits
	hub      string // hub namespace
	rootLink string // the root namespace's veth
	subnet   netip.Prefix
	root     netip.Addr
	hosts    []*Host
	made     []string // namespaces created, in order

	// stopped ends with Close; it kills every command made by
	// Host.Command, including one still inside `ip netns exec` before it
	// joined its namespace, where `ip netns pids` cannot see it.
	stopped context.Context
	stop    context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// Host is one network namespace with one link to the bridge.
type Host struct {
	net   *Network
	index int
	ns    string
	addr  netip.Addr
}

// New builds the network. It returns an error wrapping ErrUnavailable
// where namespaces cannot be created; on any error it removes what it made.
func New(ctx context.Context, cfg Config) (n *Network, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("netns config: %w", err)
	}
	tl, err := findTools(cfg.Bandwidth > 0)
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("random id: %w", err)
	}
	id := hex.EncodeToString(rnd[:])
	base := fmt.Sprintf("%s-%d-%s", cfg.Prefix, os.Getpid(), id)
	n = &Network{cfg: cfg, tools: tl, id: id, hub: base + "-hub", rootLink: cfg.Prefix + id}
	n.stopped, n.stop = context.WithCancel(context.Background())
	if err := removeStale(ctx, tl, cfg.Prefix); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if err := n.addNamespace(ctx, n.hub); err != nil {
		return n, err
	}
	if err := n.build(ctx, base); err != nil {
		return n, err
	}
	return n, nil
}

// build wires the bridge, the hosts and the root veth.
func (n *Network) build(ctx context.Context, base string) error {
	steps := [][]string{
		{"-n", n.hub, "link", "set", "lo", "up"},
		{"-n", n.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", n.hub, "link", "set", "br0", "up"},
	}
	if err := n.tools.ipAll(ctx, steps); err != nil {
		return err
	}
	subnet, err := n.claimSubnet(ctx)
	if err != nil {
		return err
	}
	n.subnet, n.root = subnet, subnet.Addr().Next()
	for i := range n.cfg.Hosts {
		h := &Host{net: n, index: i, ns: fmt.Sprintf("%s-h%d", base, i), addr: hostAddr(subnet, i)}
		if err := n.addNamespace(ctx, h.ns); err != nil {
			return err
		}
		hubEnd := fmt.Sprintf("h%d", i)
		steps := [][]string{
			{"-n", h.ns, "link", "set", "lo", "up"},
			{"-n", n.hub, "link", "add", hubEnd, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
			{"-n", n.hub, "link", "set", hubEnd, "master", "br0"},
			{"-n", n.hub, "link", "set", hubEnd, "up"},
			{"-n", h.ns, "addr", "add", netip.PrefixFrom(h.addr, subnet.Bits()).String(), "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
		}
		if err := n.tools.ipAll(ctx, steps); err != nil {
			return err
		}
		n.hosts = append(n.hosts, h)
		if n.cfg.Bandwidth > 0 {
			if err := h.SetBandwidth(ctx, n.cfg.Bandwidth); err != nil {
				return err
			}
		}
	}
	return nil
}

// claimSubnet picks a 10.213.X.0/24 that no root-namespace route overlaps,
// links the root namespace to the bridge and puts .1 on its end. It checks
// again afterwards, since another network may have claimed the same subnet
// at the same moment, and tries another one if so.
func (n *Network) claimSubnet(ctx context.Context) (netip.Prefix, error) {
	link := [][]string{
		{"link", "add", n.rootLink, "type", "veth", "peer", "name", "root", "netns", n.hub},
		{"-n", n.hub, "link", "set", "root", "master", "br0"},
		{"-n", n.hub, "link", "set", "root", "up"},
		{"link", "set", n.rootLink, "up"},
	}
	if err := n.tools.ipAll(ctx, link); err != nil {
		return netip.Prefix{}, err
	}
	const attempts = 16
	for range attempts {
		subnet, err := freeSubnet(ctx, n.tools)
		if err != nil {
			return netip.Prefix{}, err
		}
		cidr := netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits()).String()
		if err := n.tools.ip(ctx, "addr", "add", cidr, "dev", n.rootLink); err != nil {
			return netip.Prefix{}, err
		}
		others, err := routesOverlapping(ctx, n.tools, subnet, n.rootLink)
		if err != nil {
			return netip.Prefix{}, err
		}
		if others == 0 {
			return subnet, nil
		}
		if err := n.tools.ip(ctx, "addr", "del", cidr, "dev", n.rootLink); err != nil {
			return netip.Prefix{}, err
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free 10.213.X.0/24 subnet after %d attempts", attempts)
}

// hostAddr is host i's address: .10, .11, …
func hostAddr(subnet netip.Prefix, i int) netip.Addr {
	b := subnet.Addr().As4()
	b[3] = byte(10 + i)
	return netip.AddrFrom4(b)
}

// addNamespace creates a namespace and records it for Close. A refusal of
// the first `ip netns add` means this machine cannot do namespaces.
func (n *Network) addNamespace(ctx context.Context, name string) error {
	if err := n.tools.ip(ctx, "netns", "add", name); err != nil {
		if len(n.made) == 0 {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	n.made = append(n.made, name)
	return nil
}

// Hosts returns the hosts in order; host i has address 10.213.X.(10+i).
func (n *Network) Hosts() []*Host { return n.hosts }

// RootAddr is the test process's address on the bridge. Agents in the hosts
// reach the root namespace at it; nothing there is shaped.
func (n *Network) RootAddr() netip.Addr { return n.root }

// Subnet is the network's /24.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// Bandwidth is the per-host link cap each way in bit/s (0: unshaped), as
// configured; Host.SetBandwidth changes single hosts.
func (n *Network) Bandwidth() int64 { return n.cfg.Bandwidth }

// Namespaces lists the names of the namespaces this network created and
// has not yet removed.
func (n *Network) Namespaces() []string { return append([]string(nil), n.made...) }

// RootLink is the name of the root namespace's veth to the bridge.
func (n *Network) RootLink() string { return n.rootLink }

// Close kills every process left in the network's namespaces, then deletes
// the namespaces, which removes every link with them. It is safe to call
// more than once; later calls return the first call's result.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.stop()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		n.closeErr = n.teardown(ctx)
	})
	return n.closeErr
}

func (n *Network) teardown(ctx context.Context) error {
	var errs []error
	// Hosts first, the hub last: the hub holds the bridge the others hang on.
	for i := len(n.made) - 1; i >= 0; i-- {
		if err := removeNamespace(ctx, n.tools, n.made[i]); err != nil {
			errs = append(errs, err)
		}
	}
	n.made = nil
	// The root veth goes with its peer in the hub; wait for the kernel to
	// free it, and delete it ourselves if it stays.
	if err := waitFor(ctx, 2*time.Second, func() (bool, error) {
		return !n.tools.linkExists(ctx, n.rootLink), nil
	}); err != nil {
		if err := n.tools.ip(ctx, "link", "del", n.rootLink); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Index is the host's position in Network.Hosts.
func (h *Host) Index() int { return h.index }

// Namespace is the name of the host's network namespace (for `ip -n`).
func (h *Host) Namespace() string { return h.ns }

// Addr is the host's address on the bridge.
func (h *Host) Addr() netip.Addr { return h.addr }

// Command returns a command that runs name with args inside the host's
// namespace (`ip netns exec`, which execs name, so the process is name
// itself). ctx kills it, as exec.CommandContext does, and so do
// Network.Close and the death of the calling process (SIGKILL via
// Pdeathsig), so an aborted test does not leave it running. Close also kills
// whatever else is left in the namespace, and New what is left in stale
// ones.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(h.net.stopped, cancel)
	cmd := exec.CommandContext(ctx, h.net.tools.ipPath, append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// SetBandwidth caps the host's link at bps bit/s in each direction (0
// removes the cap), replacing the cap in force.
func (h *Host) SetBandwidth(ctx context.Context, bps int64) error {
	hubEnd := fmt.Sprintf("h%d", h.index)
	if err := h.net.tools.shape(ctx, h.ns, "eth0", bps); err != nil {
		return fmt.Errorf("host %d upload: %w", h.index, err)
	}
	if err := h.net.tools.shape(ctx, h.net.hub, hubEnd, bps); err != nil {
		return fmt.Errorf("host %d download: %w", h.index, err)
	}
	return nil
}

// waitFor polls cond every 50 ms until it holds, it fails, timeout passes
// or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
