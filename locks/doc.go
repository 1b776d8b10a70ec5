// Package locks coordinates a fleet of Shoal agents: serf membership,
// group-proxy election, lease locks with fencing tokens and counting
// semaphores, the lock RPC, and proxy failover.
//
// # Model
//
// Every agent is a [Member] of one group. Each group's proxy is computed, not
// voted ([Proxy]): the alive, eligible member with the highest priority, ties
// broken by name. Lock names are spread over the groups that have a proxy by
// rendezvous hashing ([Owner]); the owning group's proxy keeps the lock
// [Table]. Hashing groups rather than proxy names means that when a proxy
// fails exactly its share of the lock space moves, to its group's next proxy.
//
// A member sends every lock request to its own group proxy, which forwards it
// to the owning proxy when it is not the owner itself. A lease has a TTL and
// is renewed in the background by [Lease]; a holder that stops renewing, or
// that membership reports failed or left, loses its leases.
//
// # Fencing tokens and failover
//
// A fencing token is epoch<<22 | counter, and an owner's tokens only grow,
// across all its locks. An owner that gains lock space moves to a new epoch:
// above its previous one, at least its wall clock in milliseconds, and above
// every epoch a member advertises in its [TagEpoch] tag, which each owner
// sets when its epoch changes. So a successor starts above its predecessor
// whatever their clocks say, once the predecessor's tag has spread; an owner
// that sees a peer of its own group advertise a higher epoch (the peer owned
// the group's share while views disagreed) raises its epoch above it.
//
// A proxy that gains lock space enters a grace period for the names it
// gained: it grants nothing new for them, and holders re-assert their leases
// at once (a membership change makes every lease renew). A re-asserted token
// raises the owner's counter, so grants after the grace period are above it.
// The grace period must be longer than any lease TTL plus the time
// membership needs to converge: a holder that did not re-assert by then has
// seen its own lease expire. A member that joins (or restarts) offers itself
// as proxy only after a warm-up, once the fleet has seen it alive, so that
// it does not take lock space another proxy still serves.
//
// A client bounds its lease by the send time of its last successful request
// plus the TTL (plus the time the owner queued it, for a waited acquire),
// never later than the owner's own expiry.
//
// Safety rests on membership reporting a member failed only when it has
// stopped (serf's refutation makes a false report short-lived); where that
// does not hold, fencing tokens still order the holders.
//
// # Wire protocol
//
// The lock RPC is JSON over HTTP (see [Service]): POST /v1/locks/acquire,
// /v1/locks/renew and /v1/locks/release, errors as {"code", "message"} with
// codes NOT_HELD, TIMEOUT, LIMIT_MISMATCH, INVALID, GRACE, NOT_OWNER and
// NO_PROXY. A [Dialer] decides how a member is reached: loopback HTTP in
// tests, libp2p streams in the agent.
package locks
