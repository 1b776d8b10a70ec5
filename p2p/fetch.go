package p2p

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// FetchResult describes a Fetch.
type FetchResult struct {
	// Attempts is the number of downloads made.
	Attempts int
	// Blamed are the peers found to have sent corrupt bytes; they were
	// penalised with PenaltyCorrupt.
	Blamed []peer.ID
	// Last is the last download's report.
	Last DownloadStats
}

// Fetch downloads d into dst like Download and calls verify to check the
// result (the caller hashes what dst now holds). A blob cannot be verified
// per range, so after a failed verification Fetch finds the culprits by
// elimination: the next attempt avoids every peer of the failed ones if
// other providers exist, and otherwise uses a single suspect. A
// single-source attempt that fails convicts its peer; an attempt that
// passes convicts the peers whose chunk hashes in the failed attempts
// differ from the verified bytes. Convicted peers are penalised
// (PenaltyCorrupt, which bans them) and never used again.
//
// Every attempt rewrites all of dst, so dst needs no reset in between.
// The error wraps ErrCorrupt when the attempts run out, ErrNoProviders
// when the providers do.
func (n *Node) Fetch(ctx context.Context, d digest.Digest, size int64, providers []peer.AddrInfo,
	dst io.WriterAt, verify func(context.Context) error) (FetchResult, error) {
	var (
		res      FetchResult
		failed   []DownloadStats // multi-source attempts that did not verify
		suspects []peer.ID
		convict  []peer.ID
	)
	for attempt := 0; attempt <= len(providers); attempt++ {
		opts := n.cfg.Download
		cands := providers
		if attempt > 0 {
			fresh := without(providers, suspects, convict)
			if len(fresh) > 0 {
				cands = fresh
			} else {
				cands = without(providers, convict)
				opts.MaxPeers = 1
			}
		}
		st, err := n.download(ctx, d, size, cands, dst, opts, convict)
		res.Attempts++
		res.Last = st
		if err != nil {
			return res, fmt.Errorf("fetch: %w", err)
		}
		verr := verify(ctx)
		if verr == nil {
			for _, f := range failed {
				for _, p := range Blame(f, st) {
					if !slices.Contains(convict, p) {
						convict = append(convict, p)
						n.Penalize(p, PenaltyCorrupt)
					}
				}
			}
			res.Blamed = convict
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("fetch %s: %w", d, err)
		}
		peers := st.Peers()
		n.log.Warn("download did not verify", "digest", d, "peers", peers, "attempt", res.Attempts, "err", verr)
		if len(peers) == 1 {
			convict = append(convict, peers[0])
			n.Penalize(peers[0], PenaltyCorrupt)
			res.Blamed = convict
			continue
		}
		failed = append(failed, st)
		for _, p := range peers {
			if !slices.Contains(suspects, p) {
				suspects = append(suspects, p)
			}
		}
	}
	return res, fmt.Errorf("fetch %s: %w", d, ErrCorrupt)
}

// without returns the providers not listed in any of the sets.
func without(providers []peer.AddrInfo, sets ...[]peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, ai := range providers {
		skip := false
		for _, s := range sets {
			if slices.Contains(s, ai.ID) {
				skip = true
			}
		}
		if !skip {
			out = append(out, ai)
		}
	}
	return out
}
