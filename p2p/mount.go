package p2p

import (
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Handle serves h under pattern (an http.ServeMux pattern) on the
// peer-facing server, next to the blob routes: other services (the lock
// RPC) reach this node over the same libp2p streams. Safe to call while
// the node serves.
func (n *Node) Handle(pattern string, h http.Handler) {
	n.mux.Handle(pattern, h)
}

// PeerTransport returns the round tripper that sends HTTP requests over
// libp2p streams to the peer named in the URL's host (see PeerURL).
func (n *Node) PeerTransport() http.RoundTripper {
	return n.client.Transport
}

// PeerURL is the base URL of peer p's HTTP API over PeerTransport.
func PeerURL(p peer.ID) string {
	return "http://" + hostOf(p)
}
