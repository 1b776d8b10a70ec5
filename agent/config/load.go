package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrUsage marks a command-line error that was already printed with usage.
var ErrUsage = errors.New("usage")

// Option is one setting reachable by flag and environment variable.
type Option struct {
	Flag   string // command-line flag, without dashes
	Env    string // environment variable
	Key    string // YAML key path
	Usage  string
	Repeat bool // the flag may be given several times; the variable is comma-separated
	Bool   bool // a boolean flag: --name alone means true
	apply  func(c *Config, v string) error
}

// Options lists the settings `shoal agent` takes as flags and variables.
func Options() []Option {
	str := func(p func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	float := func(p func(*Config) *float64) func(*Config, string) error {
		return func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			*p(c) = f
			return nil
		}
	}
	return []Option{
		{Flag: "data-dir", Env: "SHOAL_DATA_DIR", Key: "data_dir", Usage: "state directory (cache, metadata, default origin)",
			apply: str(func(c *Config) *string { return &c.DataDir })},
		{Flag: "registry-addr", Env: "SHOAL_REGISTRY_ADDR", Key: "registry_addr", Usage: "OCI Distribution API listen address",
			apply: str(func(c *Config) *string { return &c.RegistryAddr })},
		{Flag: "admin-addr", Env: "SHOAL_ADMIN_ADDR", Key: "admin_addr", Usage: "admin API listen address (/metrics, /healthz, /readyz, /status)",
			apply: str(func(c *Config) *string { return &c.AdminAddr })},
		{Flag: "origin", Env: "SHOAL_ORIGIN", Key: "origins", Usage: "object store URL, repeatable, tried in order (default file://<data-dir>/origin)", Repeat: true,
			apply: func(c *Config, v string) error { c.Origins = append(c.Origins, v); return nil }},
		{Flag: "origin-credentials", Env: "SHOAL_ORIGIN_CREDENTIALS", Key: "origin_credentials", Usage: "AWS shared-credentials file for s3:// origins",
			apply: str(func(c *Config) *string { return &c.OriginCredentials })},
		{Flag: "cache-max-bytes", Env: "SHOAL_CACHE_MAX_BYTES", Key: "cache.max_bytes", Usage: "cache size cap, e.g. 20GiB (0: filesystem capacity)",
			apply: func(c *Config, v string) error { return c.Cache.MaxBytes.Set(v) }},
		{Flag: "cache-high-watermark", Env: "SHOAL_CACHE_HIGH_WATERMARK", Key: "cache.high_watermark", Usage: "fraction of the cap that starts eviction",
			apply: float(func(c *Config) *float64 { return &c.Cache.HighWatermark })},
		{Flag: "cache-low-watermark", Env: "SHOAL_CACHE_LOW_WATERMARK", Key: "cache.low_watermark", Usage: "fraction of the cap where eviction stops",
			apply: float(func(c *Config) *float64 { return &c.Cache.LowWatermark })},
		{Flag: "cache-scrub-interval", Env: "SHOAL_CACHE_SCRUB_INTERVAL", Key: "cache.scrub_interval", Usage: "how often every cached blob is re-checked against its digest (0: only after start-up)",
			apply: func(c *Config, v string) error { return c.Cache.ScrubInterval.Set(v) }},
		{Flag: "cache-scrub-rate", Env: "SHOAL_CACHE_SCRUB_RATE", Key: "cache.scrub_rate", Usage: "scrub read rate per second, e.g. 32MiB (0: unlimited)",
			apply: func(c *Config, v string) error { return c.Cache.ScrubRate.Set(v) }},
		{Flag: "push-max-upload-bytes", Env: "SHOAL_PUSH_MAX_UPLOAD_BYTES", Key: "push.max_upload_bytes", Usage: "largest blob a client may push, e.g. 20GiB (0: unlimited)",
			apply: func(c *Config, v string) error { return c.Push.MaxUploadBytes.Set(v) }},
		{Flag: "push-replication", Env: "SHOAL_PUSH_REPLICATION", Key: "push.replication", Usage: "async or sync replication of pushes to the object store",
			apply: str(func(c *Config) *string { return &c.Push.Replication })},
		{Flag: "p2p", Env: "SHOAL_P2P", Key: "p2p.enabled", Usage: "join the peer-to-peer network (--p2p=false: single host)", Bool: true,
			apply: boolSetter(func(c *Config) *bool { return &c.P2P.Enabled })},
		{Flag: "p2p-listen", Env: "SHOAL_P2P_LISTEN", Key: "p2p.listen", Usage: "libp2p listen multiaddr, repeatable (default TCP and QUIC on 4001)", Repeat: true,
			apply: func(c *Config, v string) error { c.P2P.Listen = append(c.P2P.Listen, v); return nil }},
		{Flag: "bootstrap", Env: "SHOAL_BOOTSTRAP", Key: "p2p.bootstrap", Usage: "peer multiaddr ending in /p2p/<id> to join through, repeatable", Repeat: true,
			apply: func(c *Config, v string) error { c.P2P.Bootstrap = append(c.P2P.Bootstrap, v); return nil }},
		{Flag: "swarm-key", Env: "SHOAL_SWARM_KEY", Key: "p2p.swarm_key_file", Usage: "libp2p private-network key file (TCP only)",
			apply: str(func(c *Config) *string { return &c.P2P.SwarmKeyFile })},
		{Flag: "p2p-max-streams-per-peer", Env: "SHOAL_P2P_MAX_STREAMS_PER_PEER", Key: "p2p.max_streams_per_peer", Usage: "most blob requests served to one peer at once (0: unlimited)",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("%q is not an integer", v)
				}
				c.P2P.MaxStreamsPerPeer = n
				return nil
			}},
		{Flag: "p2p-peer-upload-rate", Env: "SHOAL_P2P_PEER_UPLOAD_RATE", Key: "p2p.peer_upload_rate", Usage: "most bytes per second sent to one peer, e.g. 100MiB (0: unlimited)",
			apply: func(c *Config, v string) error { return c.P2P.PeerUploadRate.Set(v) }},
		{Flag: "read-ahead", Env: "SHOAL_READ_AHEAD", Key: "p2p.read_ahead", Usage: "read a layer of a served manifest from the origin before the client asks (--read-ahead=false: only on demand)", Bool: true,
			apply: boolSetter(func(c *Config) *bool { return &c.P2P.ReadAhead })},
		{Flag: "serf", Env: "SHOAL_SERF", Key: "serf.enabled", Usage: "join the serf cluster (--serf=false: no fleet coordination)", Bool: true,
			apply: boolSetter(func(c *Config) *bool { return &c.Serf.Enabled })},
		{Flag: "serf-addr", Env: "SHOAL_SERF_ADDR", Key: "serf.addr", Usage: "serf gossip address (default 0.0.0.0:7946)",
			apply: str(func(c *Config) *string { return &c.Serf.Addr })},
		{Flag: "join", Env: "SHOAL_JOIN", Key: "serf.join", Usage: "serf address of a member to join, repeatable", Repeat: true,
			apply: func(c *Config, v string) error { c.Serf.Join = append(c.Serf.Join, v); return nil }},
		{Flag: "serf-keyring", Env: "SHOAL_SERF_KEYRING", Key: "serf.keyring_file", Usage: "serf keyring file (encrypts gossip)",
			apply: str(func(c *Config) *string { return &c.Serf.KeyringFile })},
		{Flag: "group", Env: "SHOAL_GROUP", Key: "group", Usage: "this node's group, e.g. a rack (default: default)",
			apply: str(func(c *Config) *string { return &c.Group })},
		{Flag: "proxy-eligible", Env: "SHOAL_PROXY_ELIGIBLE", Key: "serf.proxy_eligible", Usage: "may act as the group's lock proxy", Bool: true,
			apply: boolSetter(func(c *Config) *bool { return &c.Serf.ProxyEligible })},
		{Flag: "proxy-priority", Env: "SHOAL_PROXY_PRIORITY", Key: "serf.proxy_priority", Usage: "proxy election priority (higher wins)",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("%q is not an integer", v)
				}
				c.Serf.ProxyPriority = n
				return nil
			}},
		{Flag: "upstream", Env: "SHOAL_UPSTREAM", Key: "mirror.upstreams", Usage: "upstream registry to pull through, NAME or NAME=URL, repeatable", Repeat: true,
			apply: func(c *Config, v string) error { c.Mirror.Upstreams = append(c.Mirror.Upstreams, v); return nil }},
		{Flag: "upstream-credentials", Env: "SHOAL_UPSTREAM_CREDENTIALS", Key: "mirror.credentials", Usage: "docker config.json with upstream credentials",
			apply: str(func(c *Config) *string { return &c.Mirror.Credentials })},
		{Flag: "drain-timeout", Env: "SHOAL_DRAIN_TIMEOUT", Key: "drain_timeout", Usage: "how long SIGTERM waits for in-flight requests (e.g. 60s)",
			apply: func(c *Config, v string) error { return c.DrainTimeout.Set(v) }},
		{Flag: "node-name", Env: "SHOAL_NODE_NAME", Key: "node_name", Usage: "this node's name (default: host name)",
			apply: str(func(c *Config) *string { return &c.NodeName })},
		{Flag: "log-level", Env: "SHOAL_LOG_LEVEL", Key: "log.level", Usage: "debug, info, warn or error",
			apply: str(func(c *Config) *string { return &c.Log.Level })},
		{Flag: "log-format", Env: "SHOAL_LOG_FORMAT", Key: "log.format", Usage: "json or text",
			apply: str(func(c *Config) *string { return &c.Log.Format })},
	}
}

// boolSetter parses a boolean setting.
func boolSetter(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p(c) = b
		return nil
	}
}

// Load builds the configuration from defaults, the file named by --config
// or SHOAL_CONFIG, SHOAL_* variables and flags. It returns flag.ErrHelp
// after printing usage for -h/--help.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	opts := Options()
	fs := flag.NewFlagSet("shoal agent", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: shoal agent [flags]\n\nRuns the Shoal node agent. Every flag is also a SHOAL_* variable and a YAML key.\n\nFlags:\n")
		fmt.Fprintf(out, "  --config FILE\n\tYAML configuration file (env SHOAL_CONFIG)\n")
		for _, o := range opts {
			fmt.Fprintf(out, "  --%s\n\t%s (env %s, yaml %s)\n", o.Flag, o.Usage, o.Env, o.Key)
		}
	}
	configPath := fs.String("config", getenv("SHOAL_CONFIG"), "YAML configuration file")
	type setting struct {
		opt Option
		val string
	}
	var flagged []setting
	for _, o := range opts {
		record := func(v string) error {
			flagged = append(flagged, setting{o, v})
			return nil
		}
		if o.Bool {
			fs.BoolFunc(o.Flag, o.Usage, record)
		} else {
			fs.Func(o.Flag, o.Usage, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (see shoal agent --help)", fs.Arg(0))
	}
	c := Default()
	if *configPath != "" {
		if err := c.LoadFile(*configPath); err != nil {
			return Config{}, err
		}
	}
	for _, o := range opts {
		v := getenv(o.Env)
		if v == "" {
			continue
		}
		vals := []string{v}
		if o.Repeat {
			vals = strings.Split(v, ",")
			c.resetList(o)
		}
		for _, x := range vals {
			if err := o.apply(&c, strings.TrimSpace(x)); err != nil {
				return Config{}, fmt.Errorf("%s: %w", o.Env, err)
			}
		}
	}
	reset := map[string]bool{}
	for _, s := range flagged {
		if s.opt.Repeat && !reset[s.opt.Flag] {
			c.resetList(s.opt)
			reset[s.opt.Flag] = true
		}
		if err := s.opt.apply(&c, s.val); err != nil {
			return Config{}, fmt.Errorf("--%s: %w", s.opt.Flag, err)
		}
	}
	if err := c.Finish(); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

func (c *Config) resetList(o Option) {
	switch o.Key {
	case "origins":
		c.Origins = nil
	case "p2p.listen":
		c.P2P.Listen = nil
	case "p2p.bootstrap":
		c.P2P.Bootstrap = nil
	case "serf.join":
		c.Serf.Join = nil
	case "mirror.upstreams":
		c.Mirror.Upstreams = nil
	}
}
