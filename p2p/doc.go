// Package p2p moves blobs between Shoal agents.
//
// A Node is a libp2p host with a Kademlia DHT in server mode on the
// private protocol prefix /shoal, so the fleet's DHT never joins the
// public IPFS DHT and there are no default bootstrap peers. Connections
// are secured with TLS 1.3 (preferred: AES-GCM runs in hardware) or Noise,
// over TCP (dialled first) or QUIC, or TCP only behind a private-network
// key. Streams get 16 MiB yamux windows from the start (see transport.go).
//
// Content routing maps an OCI digest to a CID (CIDv1, raw codec, the
// digest's own sha2-256 or sha2-512 multihash). Every blob the agent holds
// is provided, and the whole set is reprovided in batches on a schedule by
// boxo's provider system; withdrawn (evicted) blobs drop out of the set.
// Router is the routing contract, implemented by Node and by MemoryRouter
// for tests and the simulator.
//
// Peers serve blobs with HTTP semantics over libp2p streams (net/http
// over gostream, protocol /shoal/blob/1.0.0): HEAD and GET with a single
// Range on /blobs/{digest}, and GET /probe?bytes=N, which returns N
// pseudo-random bytes for throughput probes.
//
// Download fetches a blob from several providers at once: the blob is cut
// into chunks, runs of adjacent chunks go to one peer in one ranged
// request (runs shrink as the blob fills), faster peers lease more runs and steal the unstarted tail of slower peers'
// runs, and a failing or stalled peer's unfinished chunks go back to the
// queue. Bytes land in the caller's io.WriterAt. Download does not verify
// the blob; Fetch wraps it with the caller's verification, finds the peers
// that sent bad bytes by comparing keyed per-chunk hashes against a
// verified attempt, bans them and retries without them.
//
// Sources are chosen by active probes (DESIGN §5): the prober keeps each
// peer's RTT (libp2p ping) and throughput (a test download from /probe
// and real ranges) on a jittered schedule within a budget of probes and
// bytes per second, and probes stale candidates before a large download.
// Under the scored policy (DownloadOptions.Selection) a range's expected
// time is rtt + size/throughput, inflated by load and failures; leases
// are sized so that every peer is expected to finish together, peers too
// slow to help get none, and a range whose owner falls behind moves to an
// idle faster peer. The random policy is the baseline without scoring.
//
// The scheduling and scoring cores (schedule.go, scores.go, scorer.go,
// budget.go) are pure code with no I/O and no clock.
package p2p
