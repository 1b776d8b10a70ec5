// Package config holds the agent's configuration: defaults, the YAML file,
// SHOAL_* environment variables and command-line flags, applied in that
// order (a flag beats a variable beats the file beats the default).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole agent configuration. Every field has a yaml key, a
// default, and (for the common ones) a flag and an environment variable.
type Config struct {
	// DataDir holds the cache, the metadata DB and the default origin.
	DataDir string `yaml:"data_dir" doc:"State directory: cache, metadata, default file origin. Default: $STATE_DIRECTORY, else /var/lib/shoal if writable, else the user's state dir."`
	// RegistryAddr is where the OCI Distribution API listens.
	RegistryAddr string `yaml:"registry_addr" doc:"Listen address of the OCI Distribution API."`
	// AdminAddr serves /metrics, /healthz, /readyz and /status.
	AdminAddr string `yaml:"admin_addr" doc:"Listen address of the admin API (/metrics, /healthz, /readyz, /status)."`
	// Origins are object-store URLs tried in order on a miss; pushes go to the first writable one.
	Origins []string `yaml:"origins" doc:"Origins, tried in order: object stores (file:///path, s3://bucket[/prefix]?endpoint=HOST:PORT&region=R&tls=false) and read-only upstream registries consulted when the object stores miss (registry://HOST[:PORT][?insecure=true]; registry://docker.io for Docker Hub). Pushes go to the first object store. Default: file://<data_dir>/origin."`
	// OriginCredentials is an AWS shared-credentials file for s3:// origins.
	OriginCredentials string `yaml:"origin_credentials" doc:"AWS shared-credentials file for s3:// origins (default: AWS_* variables, then ~/.aws/credentials)."`
	// Cache configures the local content-addressable store.
	Cache CacheConfig `yaml:"cache"`
	// Push configures replication of pushed content.
	Push PushConfig `yaml:"push"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
	// P2P configures the peer-to-peer network.
	P2P P2PConfig `yaml:"p2p"`
	// Serf configures fleet membership, group-proxy election and locks.
	Serf SerfConfig `yaml:"serf"`
	// Mirror configures pull-through from upstream registries.
	Mirror MirrorConfig `yaml:"mirror"`
	// Locks configures lease timing for the fleet's locks.
	Locks LocksConfig `yaml:"locks"`
	// Group is this node's group (a rack or a zone): one origin fetch per group.
	Group string `yaml:"group" doc:"This node's group (a rack, a zone): the origin is read once per group."`
	// DrainTimeout bounds how long SIGTERM waits for in-flight requests.
	DrainTimeout Duration `yaml:"drain_timeout" doc:"How long shutdown waits for in-flight requests and transfers."`
	// NodeName names this agent in status and logs.
	NodeName string `yaml:"node_name" doc:"This node's name. Default: the host name."`
}

// CacheConfig configures the local blob cache.
type CacheConfig struct {
	MaxBytes      ByteSize `yaml:"max_bytes" doc:"Cache size cap (bytes, or with KiB/MiB/GiB/TiB). 0: what the cache holds plus the free space on the data_dir file system."`
	HighWatermark float64  `yaml:"high_watermark" doc:"Fraction of the cap at which eviction starts."`
	LowWatermark  float64  `yaml:"low_watermark" doc:"Fraction of the cap at which eviction stops."`
	// ScrubInterval is how often every cached blob is read and checked
	// against its digest; corrupt blobs are removed and fetched again.
	ScrubInterval Duration `yaml:"scrub_interval" doc:"How often every cached blob is re-read and checked against its digest (corrupt ones are removed and fetched again on the next pull). Blobs found at start-up are checked right away and before their first serve. 0: only the check after start-up."`
	// ScrubRate bounds the scrub's disk reads.
	ScrubRate ByteSize `yaml:"scrub_rate" doc:"Read rate of the scrub, bytes per second (or with KiB/MiB/GiB). 0: unlimited."`
}

// P2PConfig configures the libp2p host and DHT.
type P2PConfig struct {
	Enabled      bool     `yaml:"enabled" doc:"Join the peer-to-peer network (find and serve blobs from and to peers)."`
	Listen       []string `yaml:"listen" doc:"libp2p listen multiaddrs."`
	Bootstrap    []string `yaml:"bootstrap" doc:"Peer multiaddrs (ending in /p2p/<id>) to join the DHT through."`
	SwarmKeyFile string   `yaml:"swarm_key_file" doc:"Optional libp2p private-network key file; with it, QUIC is disabled (TCP only)."`
	// MaxStreamsPerPeer bounds concurrent blob transfers to one peer.
	MaxStreamsPerPeer int `yaml:"max_streams_per_peer" doc:"Most blob requests one peer may have served at once; more get 429 (0: unlimited)."`
	// PeerUploadRate bounds the bytes per second sent to one peer.
	PeerUploadRate ByteSize `yaml:"peer_upload_rate" doc:"Most bytes per second sent to one peer (or with KiB/MiB/GiB). 0: unlimited."`
	// ReadAhead starts origin reads of a served manifest's layers.
	ReadAhead bool `yaml:"read_ahead" doc:"When a client gets an image manifest, try the group's fetch lock of two of its missing layers and read the first one won from the origin at once (when no host has it), before the client asks: a rollout's origin reads then start together instead of in waves. Needs serf."`
}

// SerfConfig configures membership over serf.
type SerfConfig struct {
	Enabled       bool     `yaml:"enabled" doc:"Join the fleet's serf cluster (needs p2p; locks and origin dedup ride on it)."`
	Addr          string   `yaml:"addr" doc:"Serf gossip address, host:port."`
	Join          []string `yaml:"join" doc:"Serf addresses of members to join (host:port); they also bootstrap the DHT."`
	KeyringFile   string   `yaml:"keyring_file" doc:"Serf keyring (JSON list of base64 keys, first primary): encrypts gossip. With it, libp2p connections (DHT, blobs, locks) are admitted only from serf members and p2p.bootstrap peers."`
	ProxyEligible bool     `yaml:"proxy_eligible" doc:"This node may act as its group's lock proxy."`
	ProxyPriority int      `yaml:"proxy_priority" doc:"Higher wins the group's proxy election; ties go by name."`
}

// MirrorConfig configures pull-through (mirror mode) from upstream
// registries. A request names an upstream with containerd's ?ns=NAME or as
// its repository's first component (NAME/library/alpine).
type MirrorConfig struct {
	Upstreams   []string `yaml:"upstreams" doc:"Upstream registries the agent may pull through: NAME (https://NAME; docker.io means registry-1.docker.io) or NAME=URL (e.g. local=http://127.0.0.1:5002). Anything else is refused."`
	Credentials string   `yaml:"credentials" doc:"docker-style config.json with credentials for upstreams (default: anonymous)."`
	TagTTL      Duration `yaml:"tag_ttl" doc:"How long a tag resolved upstream is trusted before it is asked again."`
}

// LocksConfig sets lease timing: a dead holder's locks are free after TTL;
// a proxy that takes over lock space grants nothing new for Grace, while
// holders re-assert (Grace must exceed MaxTTL plus membership convergence).
type LocksConfig struct {
	TTL    Duration `yaml:"ttl" doc:"Default lease TTL (renewed while held)."`
	MaxTTL Duration `yaml:"max_ttl" doc:"Longest lease TTL a proxy grants."`
	Grace  Duration `yaml:"grace" doc:"How long a proxy that gains lock space grants nothing new (> max_ttl)."`
}

// PushConfig configures how pushes reach the object store.
type PushConfig struct {
	Replication string `yaml:"replication" doc:"async: 201 once stored locally and queued; sync: 201 once in the object store."`
	// MaxUploadBytes bounds one blob upload.
	MaxUploadBytes ByteSize `yaml:"max_upload_bytes" doc:"Largest blob a client may push (bytes, or with KiB/MiB/GiB/TiB); larger uploads get 413 SIZE_INVALID. 0: unlimited."`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level" doc:"debug, info, warn or error."`
	Format string `yaml:"format" doc:"json or text."`
}

// Default returns the configuration `shoal agent` runs with when nothing is set.
func Default() Config {
	return Config{
		RegistryAddr: "127.0.0.1:5000",
		AdminAddr:    "127.0.0.1:5001",
		Cache:        CacheConfig{HighWatermark: 0.90, LowWatermark: 0.75, ScrubInterval: Duration(7 * 24 * time.Hour), ScrubRate: 32 << 20},
		Push:         PushConfig{Replication: "async"},
		Log:          LogConfig{Level: "info", Format: "json"},
		DrainTimeout: Duration(60 * time.Second),
		Group:        "default",
		Mirror:       MirrorConfig{TagTTL: Duration(30 * time.Second)},
		Locks:        LocksConfig{TTL: Duration(10 * time.Second), MaxTTL: Duration(15 * time.Second), Grace: Duration(20 * time.Second)},
		Serf:         SerfConfig{Enabled: true, Addr: "0.0.0.0:7946", ProxyEligible: true},
		P2P: P2PConfig{
			Enabled: true,
			Listen:  []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},

			MaxStreamsPerPeer: 32,
			ReadAhead:         true,
		},
	}
}

// LoadFile merges a YAML file over c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, errEOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Finish fills the defaults that depend on other fields (data dir, origin, node name).
func (c *Config) Finish() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	c.DataDir = abs
	if len(c.Origins) == 0 {
		c.Origins = []string{"file://" + filepath.Join(c.DataDir, "origin")}
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "shoal"
		}
		c.NodeName = h
	}
	return nil
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: empty"))
	}
	for name, addr := range map[string]string{"registry_addr": c.RegistryAddr, "admin_addr": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %w", name, addr, err))
		}
	}
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("origins: %q: %w", o, err))
		case u.Scheme == "registry":
			if u.Host == "" {
				errs = append(errs, fmt.Errorf("origins: %q: want registry://HOST[:PORT][?insecure=true]", redact(o)))
			}
		case u.Scheme == "s3":
			if u.Host == "" {
				errs = append(errs, fmt.Errorf("origins: %q: want s3://bucket[/prefix]?endpoint=HOST:PORT", redact(o)))
			}
		case u.Scheme != "file":
			errs = append(errs, fmt.Errorf("origins: %q: unsupported scheme %q (supported: file, s3, registry)", redact(o), u.Scheme))
		case u.Path == "" || u.Host != "":
			errs = append(errs, fmt.Errorf("origins: %q: want file:///absolute/path", o))
		}
	}
	if c.Cache.MaxBytes < 0 {
		errs = append(errs, errors.New("cache.max_bytes: negative"))
	}
	h, l := c.Cache.HighWatermark, c.Cache.LowWatermark
	if h <= 0 || h > 1 || l <= 0 || l > 1 || l >= h {
		errs = append(errs, fmt.Errorf("cache watermarks: want 0 < low (%v) < high (%v) <= 1", l, h))
	}
	if c.Cache.ScrubInterval < 0 {
		errs = append(errs, fmt.Errorf("cache.scrub_interval: %s, want >= 0", c.Cache.ScrubInterval))
	}
	if c.P2P.MaxStreamsPerPeer < 0 {
		errs = append(errs, fmt.Errorf("p2p.max_streams_per_peer: %d, want >= 0", c.P2P.MaxStreamsPerPeer))
	}
	if c.P2P.Enabled && len(c.P2P.Listen) == 0 {
		errs = append(errs, errors.New("p2p.listen: empty (disable p2p with p2p.enabled: false)"))
	}
	if c.Serf.Enabled {
		if _, _, err := net.SplitHostPort(c.Serf.Addr); err != nil {
			errs = append(errs, fmt.Errorf("serf.addr: %q is not host:port: %w", c.Serf.Addr, err))
		}
		if !c.P2P.Enabled {
			errs = append(errs, errors.New("serf.enabled needs p2p.enabled (locks travel over peer connections)"))
		}
	}
	if l := c.Locks; l.TTL <= 0 || l.MaxTTL < l.TTL || l.Grace <= l.MaxTTL {
		errs = append(errs, fmt.Errorf("locks: want 0 < ttl (%s) <= max_ttl (%s) < grace (%s)", l.TTL, l.MaxTTL, l.Grace))
	}
	for _, u := range c.Mirror.Upstreams {
		if _, _, err := ParseUpstream(u); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Group == "" {
		errs = append(errs, errors.New("group: empty"))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: %s, want > 0", c.DrainTimeout))
	}
	if c.Push.Replication != "async" && c.Push.Replication != "sync" {
		errs = append(errs, fmt.Errorf("push.replication: %q, want async or sync", c.Push.Replication))
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		errs = append(errs, err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		errs = append(errs, fmt.Errorf("log.format: %q, want json or text", c.Log.Format))
	}
	return errors.Join(errs...)
}

// ParseUpstream splits a mirror.upstreams entry into its name and the
// registry's base URL.
func ParseUpstream(entry string) (name string, base *url.URL, err error) {
	name, raw, hasURL := strings.Cut(entry, "=")
	if name == "" || strings.ContainsAny(name, "/ ") {
		return "", nil, fmt.Errorf("mirror.upstreams: %q: want NAME or NAME=URL", entry)
	}
	if !hasURL {
		raw = "https://" + name
	}
	base, err = url.Parse(raw)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || (base.Path != "" && base.Path != "/") {
		return "", nil, fmt.Errorf("mirror.upstreams: %q: want NAME=http[s]://HOST[:PORT]", entry)
	}
	return name, base, nil
}

// redact drops credentials and query from a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// DefaultDataDir is $STATE_DIRECTORY (systemd), else the first writable of
// /var/lib/shoal, $XDG_STATE_HOME/shoal, ~/.local/state/shoal and
// <tmp>/shoal-<uid>, so that `shoal agent` runs as any user.
func DefaultDataDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	candidates := []string{"/var/lib/shoal"}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		candidates = append(candidates, filepath.Join(d, "shoal"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".local", "state", "shoal"))
	}
	fallback := filepath.Join(os.TempDir(), fmt.Sprintf("shoal-%d", os.Getuid()))
	for _, dir := range candidates {
		if writable(dir) {
			return dir
		}
	}
	return fallback
}

// writable reports whether dir exists and is writable, or can be created.
func writable(dir string) bool {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return true
}
