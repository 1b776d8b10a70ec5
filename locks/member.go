package locks

import (
	"strconv"
	"strings"
)

// Status is a member's liveness as membership reports it.
type Status int

// Member states, mirroring serf's.
const (
	StatusNone Status = iota
	StatusAlive
	StatusLeaving
	StatusLeft
	StatusFailed
)

// String returns the lowercase name of the status.
func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return "none"
	}
}

// Gone reports whether the member has failed or left: its leases are void.
func (s Status) Gone() bool { return s == StatusLeft || s == StatusFailed }

// Member is one agent of the fleet as membership sees it.
type Member struct {
	// Name is unique in the fleet.
	Name string
	// Group is the member's group (a rack, a zone).
	Group string
	// Status is the member's liveness.
	Status Status
	// Addr is the member's gossip address, host:port.
	Addr string
	// ProxyEligible reports whether the member may act as its group's proxy.
	ProxyEligible bool
	// Priority orders proxy candidates: highest wins.
	Priority int
	// PeerID is the member's libp2p peer ID, opaque to this package.
	PeerID string
	// PeerAddrs are the member's libp2p addresses, opaque to this package.
	PeerAddrs []string
	// Tags holds every tag the member advertises, including the ones above.
	Tags map[string]string
}

// Tag keys this package reserves in serf tags.
const (
	TagGroup    = "shoal.group"
	TagProxy    = "shoal.proxy"
	TagPriority = "shoal.prio"
	TagPeerID   = "shoal.peer"
	TagAddrs    = "shoal.addrs"
	// TagEpoch carries a lock owner's current token epoch, so that its
	// successor starts above it whatever their clocks say.
	TagEpoch = "shoal.epoch"
)

// encodeTags merges the member's fields into a copy of extra.
func encodeTags(m Member, extra map[string]string) map[string]string {
	tags := make(map[string]string, len(extra)+5)
	for k, v := range extra {
		tags[k] = v
	}
	tags[TagGroup] = m.Group
	tags[TagProxy] = strconv.FormatBool(m.ProxyEligible)
	tags[TagPriority] = strconv.Itoa(m.Priority)
	if m.PeerID != "" {
		tags[TagPeerID] = m.PeerID
	}
	if len(m.PeerAddrs) > 0 {
		tags[TagAddrs] = strings.Join(m.PeerAddrs, " ")
	}
	return tags
}

// decodeTags fills m's tag-derived fields from tags. Malformed values read
// as their zero value: an unparsable priority is 0, eligibility false.
func decodeTags(m *Member, tags map[string]string) {
	m.Tags = tags
	m.Group = tags[TagGroup]
	m.ProxyEligible, _ = strconv.ParseBool(tags[TagProxy])
	m.Priority, _ = strconv.Atoi(tags[TagPriority])
	m.PeerID = tags[TagPeerID]
	m.PeerAddrs = strings.Fields(tags[TagAddrs])
}
