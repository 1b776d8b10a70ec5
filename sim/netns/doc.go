// Package netns runs real processes — `shoal` agents in end-to-end tests —
// on hosts made of Linux network namespaces, joined by a bridge over links
// whose bandwidth is capped with tc.
//
// A Network is built by the test that uses it and removed by its Close:
//
//	root namespace (the test process)
//	  <pfx><id>   veth, 10.213.X.1/24, unshaped
//	       │
//	<pfx>-<pid>-<id>-hub namespace
//	  br0 bridge
//	   ├── root   the peer of <pfx><id>
//	   ├── h0     veth, tbf on egress (host 0's download) ── <pfx>-<pid>-<id>-h0 namespace:
//	   │                                                      eth0 10.213.X.10, tbf on egress (upload)
//	   ├── h1     …                                        ── <pfx>-<pid>-<id>-h1: eth0 10.213.X.11
//	   └── …
//
// Every host is a namespace with one veth to the hub's bridge; with a
// Bandwidth set, a token-bucket filter (tbf) sits on both ends of that veth,
// so the host's link is capped in each direction, as a host's NIC is. The
// test process reaches every host through an unshaped veth of its own on
// the bridge (Network.RootAddr), so a plain net/http client in the test
// talks to agents inside the namespaces. Host.Command runs a program in a
// host's namespace with `ip netns exec`.
//
// Only bandwidth is shaped. The kernels we run on lack tc's netem, so there
// is no added latency or loss here: latency, loss and large fleets belong
// to the in-process simulator (libp2p's mock network), and this harness is
// for end-to-end tests of the real binary over real sockets and real
// bandwidth limits.
//
// Names carry the creating process's PID and a random id, so parallel tests
// and parallel test binaries do not collide; New removes namespaces left
// behind by processes (with the same prefix) that no longer exist. The
// subnet 10.213.X.0/24 is chosen so that it overlaps no route of the root
// namespace.
//
// New needs root, `ip` and (for shaping) `tc`; where namespaces cannot be
// created it returns an error wrapping ErrUnavailable, and tests skip.
package netns
