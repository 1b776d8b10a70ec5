package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
	"github.com/shoal-dev/shoal/locks"
)

// Member is one serf member as /status shows it.
type Member struct {
	Name   string `json:"name"`
	Group  string `json:"group"`
	Status string `json:"status"`
	Addr   string `json:"addr"`
	Proxy  bool   `json:"proxy"`
}

// PeerScore is one peer's probe score as /status shows it.
type PeerScore struct {
	ID string `json:"id"`
	// RTTSeconds is the ping EWMA (0 when unknown).
	RTTSeconds float64 `json:"rtt_seconds"`
	// Throughput is the transfer rate EWMA in bytes per second (0 when unknown).
	Throughput float64 `json:"throughput_bytes_per_second"`
	// Failures is the decaying count of failed and stalled requests.
	Failures float64 `json:"failures"`
	// InFlight is the number of range requests to the peer running now.
	InFlight int `json:"in_flight"`
	// ScoreSeconds is the expected time to fetch one chunk from the peer
	// (lower is better).
	ScoreSeconds float64 `json:"score_seconds"`
	SameGroup    bool    `json:"same_group,omitempty"`
	Banned       bool    `json:"banned,omitempty"`
}

// statusPeers is how many peers /status lists, best score first.
const statusPeers = 20

// LockOwner says which proxy owns a group's share of the lock space.
type LockOwner struct {
	Group string `json:"group"`
	Proxy string `json:"proxy"`
}

// Status is the JSON document served at /status and printed by `shoal status`.
type Status struct {
	Node          string           `json:"node"`
	Version       string           `json:"version"`
	Ready         bool             `json:"ready"`
	RegistryAddr  string           `json:"registry_addr"`
	DataDir       string           `json:"data_dir"`
	Origins       []string         `json:"origins"`
	CacheBytes    int64            `json:"cache_bytes"`
	CacheBlobs    int              `json:"cache_blobs"`
	CacheLimit    int64            `json:"cache_limit_bytes"`
	CacheHigh     int64            `json:"cache_high_watermark_bytes"`
	CacheLow      int64            `json:"cache_low_watermark_bytes"`
	OutboxPending int              `json:"outbox_pending"`
	OutboxError   string           `json:"outbox_last_error,omitempty"`
	OutboxErrorAt string           `json:"outbox_last_error_at,omitempty"`
	OriginHealth  []observe.Health `json:"origin_health"`
	Group         string           `json:"group"`
	Proxy         string           `json:"proxy,omitempty"`
	Members       []Member         `json:"members,omitempty"`
	LockOwners    []LockOwner      `json:"lock_owners,omitempty"`
	HeldLocks     []HeldLock       `json:"held_locks"`
	// LockGraceUntil is when this host, as a lock proxy that gained lock
	// space, starts granting locks in it again (absent: it grants now).
	LockGraceUntil string      `json:"lock_grace_until,omitempty"`
	PeerID         string      `json:"peer_id,omitempty"`
	P2PAddrs       []string    `json:"p2p_addrs,omitempty"`
	DHTPeers       int         `json:"dht_peers"`
	Peers          []PeerScore `json:"peers,omitempty"`
	Probes         int64       `json:"probes"`
	ProbeBytes     int64       `json:"probe_bytes"`
	// Fetches are the blobs being brought into the cache now, then the
	// last ones brought, newest first, with where their bytes came from.
	Fetches []FetchSources `json:"recent_fetches"`
}

func (a *Agent) status() Status {
	u := a.cas.Usage()
	s := Status{
		Node: a.cfg.NodeName, Version: Version, RegistryAddr: a.registryAddr, DataDir: a.cfg.DataDir,
		Origins: redactedOrigins(a.cfg.Origins), CacheBytes: u.Bytes, CacheBlobs: u.Blobs, CacheLimit: u.Limit,
		CacheHigh: u.High, CacheLow: u.Low, OutboxPending: a.outbox.Pending(),
	}
	select {
	case <-a.ready:
		s.Ready = true
	default:
	}
	for _, o := range a.origins {
		s.OriginHealth = append(s.OriginHealth, o.Health())
	}
	s.Group, s.HeldLocks = a.cfg.Group, a.holds.list()
	if a.cluster != nil {
		members := a.cluster.Members()
		proxies := locks.Proxies(members)
		if p, ok := locks.Proxy(members, a.cfg.Group); ok {
			s.Proxy = p.Name
		}
		for _, m := range members {
			isProxy := slices.ContainsFunc(proxies, func(p locks.Member) bool { return p.Name == m.Name })
			s.Members = append(s.Members, Member{Name: m.Name, Group: m.Group, Status: m.Status.String(), Addr: m.Addr, Proxy: isProxy})
		}
		for _, p := range proxies {
			s.LockOwners = append(s.LockOwners, LockOwner{Group: p.Group, Proxy: p.Name})
		}
	}
	if a.lockService != nil {
		if until := a.lockService.GraceUntil(); !until.IsZero() {
			s.LockGraceUntil = until.UTC().Format(time.RFC3339Nano)
		}
	}
	if a.node != nil {
		st := a.node.Stats()
		s.PeerID, s.P2PAddrs, s.DHTPeers = a.node.ID().String(), a.node.Addrs(), st.RoutingTablePeers
		s.Probes, s.ProbeBytes = st.Probes, st.ProbeBytes
		for _, p := range a.node.Peers(statusPeers) {
			s.Peers = append(s.Peers, PeerScore{
				ID: p.ID.String(), RTTSeconds: p.RTT.Seconds(), Throughput: p.Throughput, Failures: p.Failures,
				InFlight: p.InFlight, ScoreSeconds: p.Expected.Seconds(), SameGroup: p.SameGroup, Banned: p.Banned,
			})
		}
	}
	s.Fetches = a.pulls.list()
	a.nameFetchPeers(s.Fetches)
	if at, err := a.outbox.LastError(); err != nil {
		s.OutboxError, s.OutboxErrorAt = err.Error(), at.UTC().Format(time.RFC3339)
	}
	return s
}

func (a *Agent) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-a.ready:
			w.Write([]byte("ready\n"))
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /v1/locks/hold", a.serveLockHold)
	mux.HandleFunc("GET /loglevel", a.serveLogLevel)
	mux.HandleFunc("PUT /loglevel", a.serveLogLevel)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.status())
	})
	return mux
}

// redactedOrigins drops credentials and query strings from origin URLs.
func redactedOrigins(urls []string) []string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		if u, err := url.Parse(raw); err == nil {
			u.User, u.RawQuery = nil, ""
			out[i] = u.String()
		} else {
			out[i] = "(unparsable)"
		}
	}
	return out
}

// serveLogLevel reports (GET) or sets (PUT, body: debug|info|warn|error)
// the log level.
func (a *Agent) serveLogLevel(w http.ResponseWriter, r *http.Request) {
	if a.level == nil {
		http.Error(w, "the log level is fixed in this process", http.StatusNotImplemented)
		return
	}
	if r.Method == http.MethodPut {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64))
		l, err := config.ParseLevel(strings.TrimSpace(string(body)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.level.Set(l)
		a.log.Info("log level changed", "level", l.String())
	}
	fmt.Fprintln(w, strings.ToLower(a.level.Level().String()))
}
