package agent

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is the JSON document served at /status and printed by `shoal status`.
type Status struct {
	Node          string   `json:"node"`
	Version       string   `json:"version"`
	Ready         bool     `json:"ready"`
	RegistryAddr  string   `json:"registry_addr"`
	DataDir       string   `json:"data_dir"`
	Origins       []string `json:"origins"`
	CacheBytes    int64    `json:"cache_bytes"`
	CacheBlobs    int      `json:"cache_blobs"`
	CacheLimit    int64    `json:"cache_limit_bytes"`
	CacheHigh     int64    `json:"cache_high_watermark_bytes"`
	CacheLow      int64    `json:"cache_low_watermark_bytes"`
	OutboxPending int      `json:"outbox_pending"`
	OutboxError   string   `json:"outbox_last_error,omitempty"`
	OutboxErrorAt string   `json:"outbox_last_error_at,omitempty"`
	PeerID        string   `json:"peer_id,omitempty"`
	P2PAddrs      []string `json:"p2p_addrs,omitempty"`
	DHTPeers      int      `json:"dht_peers"`
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
	if a.node != nil {
		s.PeerID, s.P2PAddrs, s.DHTPeers = a.node.ID().String(), a.node.Addrs(), a.node.Stats().RoutingTablePeers
	}
	if err, at := a.outbox.LastError(); err != nil {
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
