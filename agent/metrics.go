package agent

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-dev/shoal/p2p"
)

// metrics are the agent's Prometheus series, on a registry of its own (no
// global registry: several agents can live in one process, as in the simulator).
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	fetchBytes     *prometheus.CounterVec
	evictions      prometheus.Counter
	dhtFind        prometheus.Histogram
	lockWait       prometheus.Histogram
	swarmFailures  prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_registry_requests_total",
		Help: "OCI Distribution API requests by method, route and status code.",
	}, []string{"method", "route", "code"})
	m.requestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_registry_request_seconds",
		Help:    "OCI Distribution API request duration by route (until the handler returns).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"route"})
	m.fetchBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_fetch_bytes_total",
		Help: "Bytes brought into the cache, by source (origin or peer).",
	}, []string{"source"})
	m.evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_cache_evictions_total",
		Help: "Blobs evicted from the cache.",
	})
	m.dhtFind = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_dht_find_seconds",
		Help:    "Duration of DHT provider lookups before a fetch.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	})
	m.lockWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_origin_lock_wait_seconds",
		Help:    "Time a miss waited for its group's origin fetch lock or for the winner to appear as a provider.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	m.swarmFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_swarm_failures_total",
		Help: "Swarm downloads that gave up (the fetch went on from single complete providers or the origin).",
	})
	m.reg.MustRegister(m.dhtFind, m.lockWait, m.swarmFailures)
	if a.node != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shoal_peer_bytes_served_total", Help: "Blob bytes sent to peers.",
			}, func() float64 { return float64(a.node.Stats().BytesServed) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shoal_dht_provided_blobs", Help: "Blobs this agent announces in the DHT.",
			}, func() float64 { return float64(a.node.Stats().ProvidedBlobs) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "shoal_dht_routing_table_peers", Help: "Peers in the DHT routing table.",
			}, func() float64 { return float64(a.node.Stats().RoutingTablePeers) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shoal_probe_bytes_total", Help: "Test download bytes received by peer probes.",
			}, func() float64 { return float64(a.node.Stats().ProbeBytes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "shoal_probes_total", Help: "Peer probes started (a ping, with or without a test download).",
			}, func() float64 { return float64(a.node.Stats().Probes) }),
			peerScores{node: a.node, top: metricPeers},
		)
	}
	for _, s := range []string{"origin", "peer"} {
		m.fetchBytes.WithLabelValues(s)
	}
	m.reg.MustRegister(m.requests, m.requestSeconds, m.fetchBytes, m.evictions, a.originStats,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_cache_bytes", Help: "Bytes of blobs in the cache.",
		}, func() float64 { return float64(a.cas.Usage().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_cache_limit_bytes", Help: "The cache's size cap.",
		}, func() float64 { return float64(a.cas.Usage().Limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_cache_blobs", Help: "Blobs in the cache.",
		}, func() float64 { return float64(a.cas.Usage().Blobs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_outbox_pending", Help: "Replication items not yet written to the object store.",
		}, func() float64 { return float64(a.outbox.Pending()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observeRequest is registryapi's OnRequest hook.
func (m *metrics) observeRequest(method, route string, code int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.requestSeconds.WithLabelValues(route).Observe(d.Seconds())
}

// metricPeers bounds the per-peer series: only the best-scored peers are
// exported.
const metricPeers = 10

var (
	peerRTTDesc = prometheus.NewDesc("shoal_peer_rtt_seconds",
		"Ping round-trip time EWMA of the best-scored peers.", []string{"peer"}, nil)
	peerThroughputDesc = prometheus.NewDesc("shoal_peer_throughput_bytes_per_second",
		"Transfer rate EWMA (probes and real ranges) of the best-scored peers.", []string{"peer"}, nil)
)

// peerScores exports the probe scores of the top best-scored peers at
// scrape time, so the number of series stays bounded however many peers
// the node knows.
type peerScores struct {
	node *p2p.Node
	top  int
}

func (c peerScores) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerRTTDesc
	ch <- peerThroughputDesc
}

func (c peerScores) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.node.Peers(c.top) {
		id := p.ID.String()
		if p.RTT > 0 {
			ch <- prometheus.MustNewConstMetric(peerRTTDesc, prometheus.GaugeValue, p.RTT.Seconds(), id)
		}
		if p.Throughput > 0 {
			ch <- prometheus.MustNewConstMetric(peerThroughputDesc, prometheus.GaugeValue, p.Throughput, id)
		}
	}
}
