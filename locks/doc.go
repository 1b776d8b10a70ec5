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
// A fencing token is epoch<<22 | counter. The epoch is the owner's wall clock
// in milliseconds when it last gained lock space, never less than its previous
// epoch plus one, so a new owner's tokens start above any token its
// predecessor issued (assuming clocks agree to within the time an owner keeps
// its share). Tokens only grow within an owner, across all its locks.
//
// A proxy that gains lock space enters a grace period for the names it
// gained: it grants nothing new for them, and holders re-assert their leases
// with their next renewal. A re-asserted token raises the owner's counter, so
// grants after the grace period are above it. The grace period must be longer
// than any lease TTL plus the time membership needs to converge: a holder
// that did not re-assert by then has seen its own lease expire.
//
// Safety rests on membership reporting a member failed only when it has
// stopped (serf's refutation makes a false report short-lived); where that
// does not hold, fencing tokens still order the holders.
package locks
