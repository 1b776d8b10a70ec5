package p2p

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// Router is the content-routing part of a Node, for consumers that want
// to swap in MemoryRouter (tests, the simulator). Consumers may well
// declare their own smaller interface; this one documents the contract
// the conformance test checks.
type Router interface {
	// Ready reports whether lookups and announcements can reach peers.
	Ready() bool
	// Provide announces that this node serves d.
	Provide(ctx context.Context, d digest.Digest) error
	// Withdraw stops announcing d.
	Withdraw(d digest.Digest)
	// FindProviders returns up to limit providers of d other than this node.
	FindProviders(ctx context.Context, d digest.Digest, limit int) ([]peer.AddrInfo, error)
}

var (
	_ Router = (*Node)(nil)
	_ Router = (*MemoryRouter)(nil)
)

// MemoryRouting is an in-memory provider table shared by the
// MemoryRouters of a simulated fleet. Withdraw takes effect at once (a DHT
// forgets only when records expire).
type MemoryRouting struct {
	mu        sync.Mutex
	providers map[digest.Digest]map[peer.ID]peer.AddrInfo
}

// NewMemoryRouting returns an empty table.
func NewMemoryRouting() *MemoryRouting {
	return &MemoryRouting{providers: make(map[digest.Digest]map[peer.ID]peer.AddrInfo)}
}

// Router returns the router of the node self.
func (m *MemoryRouting) Router(self peer.AddrInfo) *MemoryRouter {
	return &MemoryRouter{table: m, self: self}
}

// MemoryRouter is one node's view of a MemoryRouting.
type MemoryRouter struct {
	table *MemoryRouting
	self  peer.AddrInfo
}

// Ready implements Router; a memory router is always ready.
func (r *MemoryRouter) Ready() bool { return true }

// Provide implements Router.
func (r *MemoryRouter) Provide(_ context.Context, d digest.Digest) error {
	if _, err := DigestToCID(d); err != nil {
		return fmt.Errorf("provide: %w", err)
	}
	r.table.mu.Lock()
	defer r.table.mu.Unlock()
	ps, ok := r.table.providers[d]
	if !ok {
		ps = make(map[peer.ID]peer.AddrInfo)
		r.table.providers[d] = ps
	}
	ps[r.self.ID] = r.self
	return nil
}

// Withdraw implements Router.
func (r *MemoryRouter) Withdraw(d digest.Digest) {
	r.table.mu.Lock()
	defer r.table.mu.Unlock()
	delete(r.table.providers[d], r.self.ID)
}

// FindProviders implements Router. Providers come in peer ID order.
func (r *MemoryRouter) FindProviders(ctx context.Context, d digest.Digest, limit int) ([]peer.AddrInfo, error) {
	if _, err := DigestToCID(d); err != nil {
		return nil, fmt.Errorf("find providers: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.table.mu.Lock()
	var out []peer.AddrInfo
	for id, ai := range r.table.providers[d] {
		if id != r.self.ID {
			out = append(out, ai)
		}
	}
	r.table.mu.Unlock()
	slices.SortFunc(out, func(a, b peer.AddrInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out[:min(len(out), max(limit, 0))], nil
}
