// Package p2p moves blobs between Shoal agents.
//
// A Node is a libp2p host (Noise; TCP and QUIC, or TCP only behind a
// private-network key) with a Kademlia DHT in server mode on the private
// protocol prefix /shoal, so the fleet's DHT never joins the public IPFS
// DHT. Content routing maps an OCI digest to a CID (CIDv1, raw codec, the
// digest's own multihash); every blob the agent holds is provided, and the
// whole set is reprovided in batches on a schedule by boxo's provider
// system. Withdrawn (evicted) blobs drop out of the set and stop being
// announced.
//
// Peers serve blobs to each other with HTTP semantics over libp2p streams
// (net/http over gostream): HEAD and GET with a single Range on
// /blobs/{digest}, and GET /probe?bytes=N, which returns N pseudo-random
// bytes for throughput probes.
//
// Download fetches a blob from several providers at once: the blob is cut
// into fixed-size chunks, runs of adjacent chunks go to one peer in one
// ranged request, faster peers take more runs, and a failing or stalled
// peer's unfinished chunks go back to the queue for another peer. Bytes
// land in the caller's io.WriterAt. Nothing here verifies a whole blob: the
// caller does, and Fetch wraps Download with the caller's verification,
// finds the peers that sent bad bytes by comparing per-chunk hashes with a
// verified attempt, penalises them and retries without them.
//
// The scheduling and scoring parts (schedule.go, scores.go) are pure code
// with no I/O.
package p2p
