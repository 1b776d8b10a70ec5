package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Strategy names, in report order.
const (
	OriginOnly = "origin-only" // every host reads the object store; no peers
	RandomPeer = "random-peer" // peers in random order, no scores, no origin locks
	Hedged     = "hedged"      // least-used peer, hedged after the recent p80; no probes; origin locks
	Shoal      = "shoal"       // the real agent: scored multi-source, once per group
)

// Strategies lists every strategy the simulator knows.
var strategies = []string{OriginOnly, RandomPeer, Hedged, Shoal}

// Event actions.
const (
	ActPull       = "pull"
	ActPush       = "push"
	ActKill       = "kill"
	ActRestart    = "restart"
	ActPartition  = "partition"
	ActHeal       = "heal"
	ActOriginDown = "origin-down"
	ActOriginUp   = "origin-up"
)

// Scenario is a fleet, its links, its images and a schedule of events.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Seed drives everything random: image bytes, node choices.
	Seed uint64 `yaml:"seed"`
	// Scale divides every size and bandwidth so a large rollout fits one
	// machine: times stay those of the full-size fleet (latencies are not
	// scaled), bytes are reported at full size. Default 64.
	Scale         int         `yaml:"scale"`
	Groups        int         `yaml:"groups"`
	NodesPerGroup int         `yaml:"nodes_per_group"`
	Links         Links       `yaml:"links"`
	SlowHosts     []SlowHosts `yaml:"slow_hosts"`
	Images        []Image     `yaml:"images"`
	Events        []Event     `yaml:"events"`
	Strategies    []string    `yaml:"strategies"`
	// PullTimeout fails a pull that has not finished. Default 5m.
	PullTimeout Duration `yaml:"pull_timeout"`
	// Settle is how long the run waits after the last event for pulls to
	// end. Default: PullTimeout.
	Settle Duration `yaml:"settle"`
	// TimeDilation runs a strategy's fleet N times slower than simulated
	// time (N ≥ 1, default 1): link speeds are divided by N; latencies, the
	// schedule, the lock leases and the swarm's stall and give-up timeouts
	// are multiplied by N; reported times are divided by N. A fleet whose
	// agents need more CPU than the machine has (they all share its cores)
	// so gets N times the CPU per simulated second. The agents' other
	// timers (gossip, polls, hedges) are not dilated: they run N times
	// faster against the simulated clock.
	TimeDilation map[string]int `yaml:"time_dilation"`
	// Concurrent names strategies whose fleets run at the same time, before
	// the others, which run one after another. It suits strategies that
	// wait on the object store's egress cap and leave the CPU mostly idle;
	// the report's scheduling latency shows whether they starved each
	// other.
	Concurrent []string `yaml:"concurrent"`
}

// RunOrder is the order in which the strategies run: the listed
// concurrent ones together first (as one batch), then each other one
// alone, in the order of Strategies.
func (s *Scenario) RunOrder() [][]string {
	var together []string
	for _, st := range s.Strategies {
		if slices.Contains(s.Concurrent, st) {
			together = append(together, st)
		}
	}
	var order [][]string
	if len(together) > 0 {
		order = append(order, together)
	}
	for _, st := range s.Strategies {
		if !slices.Contains(together, st) {
			order = append(order, []string{st})
		}
	}
	return order
}

// Dilation is the time dilation of strategy's run (1: none).
func (s *Scenario) Dilation(strategy string) int {
	if n := s.TimeDilation[strategy]; n > 1 {
		return n
	}
	return 1
}

// Links are the fleet's network.
type Links struct {
	// Host is every host's link speed, each way (default 1Gbit).
	Host Bandwidth `yaml:"host"`
	// IntraGroupLatency and InterGroupLatency are one-way delays between
	// hosts of one group and of different groups.
	IntraGroupLatency Duration `yaml:"intra_group_latency"`
	InterGroupLatency Duration `yaml:"inter_group_latency"`
	// OriginLatency delays each object-store request.
	OriginLatency Duration `yaml:"origin_latency"`
	// OriginEgress caps the object store's total egress (0: unlimited).
	OriginEgress Bandwidth `yaml:"origin_egress"`
}

// SlowHosts gives a fraction of the hosts (chosen by the seed) a slower link.
type SlowHosts struct {
	Fraction  float64   `yaml:"fraction"`
	Bandwidth Bandwidth `yaml:"bandwidth"`
}

// Image is a generated image: Layers layers summing to Size bytes.
type Image struct {
	// Name is repository:tag.
	Name   string `yaml:"name"`
	Layers int    `yaml:"layers"`
	Size   Bytes  `yaml:"size"`
	// Pushed images are not in the object store at the start; a push
	// event brings them in. Default false: the image is already there.
	Pushed bool `yaml:"pushed"`
}

// Event is one scheduled action.
type Event struct {
	At     Duration `yaml:"at"`
	Action string   `yaml:"action"`
	// Nodes selects hosts: "all", "group:g03", "g03-n07", "random:K",
	// "random:K@group:g03", "proxy:g03" (that group's proxy when the event
	// runs) or "down" (the hosts not running when the event runs).
	Nodes []string `yaml:"nodes"`
	// Image names the image to pull or push.
	Image string `yaml:"image"`
	// Groups are the groups a partition cuts off from the rest.
	Groups []string `yaml:"groups"`
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(b)
}

// Parse reads and validates a scenario.
func Parse(b []byte) (*Scenario, error) {
	var s Scenario
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s.defaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Scenario) defaults() {
	if s.Scale == 0 {
		s.Scale = 64
	}
	if s.Links.Host == 0 {
		s.Links.Host = 1e9 / 8
	}
	if len(s.Strategies) == 0 {
		s.Strategies = slices.Clone(strategies)
	}
	if s.PullTimeout == 0 {
		s.PullTimeout = Duration(5 * time.Minute)
	}
	if s.Settle == 0 {
		s.Settle = s.PullTimeout
	}
}

// Validate reports every problem in the scenario.
func (s *Scenario) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Name == "" {
		bad("name is missing")
	}
	if s.Scale < 1 || s.Scale > 4096 {
		bad("scale %d: want 1..4096", s.Scale)
	}
	if s.Groups < 1 || s.NodesPerGroup < 1 {
		bad("groups and nodes_per_group must be at least 1")
	}
	if n := s.Groups * s.NodesPerGroup; n > 1000 {
		bad("%d nodes: at most 1000", n)
	}
	var slow float64
	for i, h := range s.SlowHosts {
		if h.Fraction <= 0 || h.Fraction > 1 || h.Bandwidth <= 0 {
			bad("slow_hosts[%d]: want 0 < fraction <= 1 and a bandwidth", i)
		}
		slow += h.Fraction
	}
	if slow > 1 {
		bad("slow_hosts: fractions add up to %.2f > 1", slow)
	}
	images := map[string]bool{}
	for i, im := range s.Images {
		if _, _, ok := strings.Cut(im.Name, ":"); !ok || strings.HasPrefix(im.Name, ":") {
			bad("images[%d]: name %q: want repository:tag", i, im.Name)
		}
		if images[im.Name] {
			bad("images[%d]: %q declared twice", i, im.Name)
		}
		images[im.Name] = true
		if im.Layers < 1 || im.Layers > 128 {
			bad("images[%d]: layers %d: want 1..128", i, im.Layers)
		}
		if int64(im.Size)/int64(max(s.Scale, 1)) < int64(max(im.Layers, 1))*1024 {
			bad("images[%d]: size %s too small for %d layers at scale %d", i, im.Size, im.Layers, s.Scale)
		}
	}
	if len(s.Images) == 0 {
		bad("no images")
	}
	for _, st := range s.Strategies {
		if !slices.Contains(strategies, st) {
			bad("strategy %q: want one of %s", st, strings.Join(strategies, ", "))
		}
	}
	for st, n := range s.TimeDilation {
		if !slices.Contains(strategies, st) {
			bad("time_dilation: strategy %q: want one of %s", st, strings.Join(strategies, ", "))
		}
		if n < 1 || n > 64 {
			bad("time_dilation: %s: %d: want 1..64", st, n)
		}
	}
	for i, st := range s.Concurrent {
		if !slices.Contains(strategies, st) {
			bad("concurrent: strategy %q: want one of %s", st, strings.Join(strategies, ", "))
		}
		if slices.Contains(s.Concurrent[:i], st) {
			bad("concurrent: strategy %q listed twice", st)
		}
	}
	groups := map[string]bool{}
	for g := range s.Groups {
		groups[GroupName(g)] = true
	}
	var last time.Duration
	for i, e := range s.Events {
		where := fmt.Sprintf("events[%d] (%s at %s)", i, e.Action, e.At.D())
		if e.At.D() < last {
			bad("%s: events must be in time order", where)
		}
		last = e.At.D()
		switch e.Action {
		case ActPull, ActPush:
			if !images[e.Image] {
				bad("%s: unknown image %q", where, e.Image)
			}
			if len(e.Nodes) == 0 {
				bad("%s: no nodes", where)
			}
		case ActKill, ActRestart:
			if len(e.Nodes) == 0 {
				bad("%s: no nodes", where)
			}
		case ActPartition:
			if len(e.Groups) == 0 {
				bad("%s: no groups", where)
			}
		case ActHeal, ActOriginDown, ActOriginUp:
		default:
			bad("%s: unknown action; want pull, push, kill, restart, partition, heal, origin-down or origin-up", where)
		}
		for _, g := range e.Groups {
			if !groups[g] {
				bad("%s: unknown group %q", where, g)
			}
		}
		for _, sel := range e.Nodes {
			if err := s.checkSelector(sel, groups); err != nil {
				bad("%s: %w", where, err)
			}
		}
	}
	if len(s.Events) == 0 {
		bad("no events")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	return nil
}

func (s *Scenario) checkSelector(sel string, groups map[string]bool) error {
	kind, arg, _ := strings.Cut(sel, ":")
	switch {
	case sel == "all" || sel == "down":
		return nil
	case kind == "group" || kind == "proxy":
		if !groups[arg] {
			return fmt.Errorf("selector %q: unknown group", sel)
		}
		return nil
	case kind == "random":
		count, scope, _ := strings.Cut(arg, "@")
		if k, err := strconv.Atoi(count); err != nil || k < 1 {
			return fmt.Errorf("selector %q: want random:K with K >= 1", sel)
		}
		if scope != "" {
			return s.checkSelector(scope, groups)
		}
		return nil
	}
	g, n, ok := parseNodeName(sel)
	if !ok || g >= s.Groups || n >= s.NodesPerGroup {
		return fmt.Errorf("selector %q: want all, down, group:gNN, proxy:gNN, random:K[@group:gNN] or a node name like g01-n01", sel)
	}
	return nil
}

// Nodes is the fleet size.
func (s *Scenario) Nodes() int { return s.Groups * s.NodesPerGroup }

// GroupName names group g (0-based) as "g01".
func GroupName(g int) string { return fmt.Sprintf("g%02d", g+1) }

// NodeName names node n (0-based) of group g as "g01-n01".
func NodeName(g, n int) string { return fmt.Sprintf("%s-n%02d", GroupName(g), n+1) }

func parseNodeName(s string) (g, n int, ok bool) {
	gs, ns, found := strings.Cut(s, "-")
	if !found || !strings.HasPrefix(gs, "g") || !strings.HasPrefix(ns, "n") {
		return 0, 0, false
	}
	gi, err1 := strconv.Atoi(gs[1:])
	ni, err2 := strconv.Atoi(ns[1:])
	if err1 != nil || err2 != nil || gi < 1 || ni < 1 {
		return 0, 0, false
	}
	return gi - 1, ni - 1, true
}
