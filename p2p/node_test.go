package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

func randomBlob(seed uint64, size int) []byte {
	b := make([]byte, size)
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func TestFleetFindAndDownload(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	blob := randomBlob(1, 1<<20+12345)
	owner := NewMemorySource()
	d := owner.Put(blob)
	nodes := startFleet(t, 5, testConfig(), nil, nil, nil, owner)
	holder := nodes[3]
	if err := holder.Provide(ctx, d); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	waitFor(t, 10*time.Second, "announcement", func() bool { return holder.Stats().Announcements > 0 })

	for i, n := range nodes {
		if n == holder {
			continue
		}
		var provs []peer.AddrInfo
		waitFor(t, 10*time.Second, "providers", func() bool {
			var err error
			provs, err = n.FindProviders(ctx, d, 3)
			if err != nil {
				t.Fatalf("node %d FindProviders: %v", i, err)
			}
			return len(provs) > 0
		})
		if len(provs) != 1 || provs[0].ID != holder.ID() {
			t.Fatalf("node %d: providers %v, want only %s", i, provs, holder.ID())
		}
		size, err := n.Stat(ctx, holder.ID(), d)
		if err != nil || size != int64(len(blob)) {
			t.Fatalf("node %d Stat = %d, %v; want %d", i, size, err, len(blob))
		}
		dst := newMemFile(size)
		st, err := n.Download(ctx, d, size, provs, dst)
		if err != nil {
			t.Fatalf("node %d Download: %v", i, err)
		}
		if !bytes.Equal(dst.Bytes(), blob) {
			t.Fatalf("node %d: downloaded bytes differ", i)
		}
		if st.Bytes != size || st.BytesByPeer[holder.ID()] != size {
			t.Fatalf("node %d: stats %+v", i, st)
		}
	}
	if got := holder.Stats().BytesServed; got < 4*int64(len(blob)) {
		t.Errorf("holder served %d bytes, want at least %d", got, 4*len(blob))
	}
}

func TestFindProvidersWithdrawAndSelf(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	nodes := startFleet(t, 2, testConfig())
	d := digest.FromString("nobody has this")
	provs, err := nodes[1].FindProviders(ctx, d, 2)
	if err != nil || len(provs) != 0 {
		t.Fatalf("FindProviders(absent) = %v, %v; want none", provs, err)
	}

	// A node never finds itself.
	if err := nodes[0].Provide(ctx, d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "announcement", func() bool { return nodes[0].Stats().Announcements > 0 })
	if provs, err := nodes[0].FindProviders(ctx, d, 2); err != nil || len(provs) != 0 {
		t.Fatalf("self lookup = %v, %v; want none", provs, err)
	}
	if got := nodes[0].Stats().ProvidedBlobs; got != 1 {
		t.Fatalf("ProvidedBlobs = %d, want 1", got)
	}
	nodes[0].Withdraw(d)
	if got := nodes[0].Stats().ProvidedBlobs; got != 0 {
		t.Fatalf("ProvidedBlobs after Withdraw = %d, want 0", got)
	}

	// The lookup deadline holds when the caller's context ends first.
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := nodes[1].FindProviders(short, digest.FromString("x"), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("FindProviders(cancelled) err = %v, want context.Canceled", err)
	}
}

func TestIdentityPersists(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.IdentityFile = filepath.Join(t.TempDir(), "identity.key")
	a, err := New(t.Context(), cfg, NewMemorySource())
	if err != nil {
		t.Fatal(err)
	}
	id := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), cfg, NewMemorySource())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.ID() != id {
		t.Fatalf("identity changed: %s then %s", id, b.ID())
	}
	for _, a := range b.Addrs() {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			t.Errorf("Addrs() entry %q: %v", a, err)
		}
	}
}

// TestReprovideInBatches: the whole set is announced again on schedule,
// in batches of at most ReprovideBatchSize, without withdrawn blobs.
func TestReprovideInBatches(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.ListenAddrs = cfg.ListenAddrs[:1]
	cfg.ReprovideInterval = 2 * time.Second // <= 1 minute: boxo reprovides at start, then every interval
	cfg.ReprovideBatchSize = 16
	nodes := startFleet(t, 3, cfg)
	n := nodes[1]
	const total, withdrawn = 100, 30
	var ds []digest.Digest
	for i := range total {
		d := digest.FromString(fmt.Sprint("blob-", i))
		ds = append(ds, d)
		if err := n.Provide(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range ds[:withdrawn] {
		n.Withdraw(d)
	}
	if got := n.Stats().ProvidedBlobs; got != total-withdrawn {
		t.Fatalf("ProvidedBlobs = %d, want %d", got, total-withdrawn)
	}
	ch, err := n.providedKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for c := range ch {
		d, err := CIDToDigest(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ds[:withdrawn] {
			if d == w {
				t.Fatalf("withdrawn %s still in the reprovide set", d)
			}
		}
		keys++
	}
	if keys != total-withdrawn {
		t.Fatalf("reprovide set has %d keys, want %d", keys, total-withdrawn)
	}
	waitFor(t, 20*time.Second, "a full reprovide", func() bool {
		return n.Stats().Reprovided >= total-withdrawn
	})
	if st := n.Stats(); st.LastReprovideBatch > uint64(cfg.ReprovideBatchSize) || st.LastReprovideBatch == 0 {
		t.Fatalf("last reprovide batch %d, want 1..%d", st.LastReprovideBatch, cfg.ReprovideBatchSize)
	}
	// Another node finds a reprovided blob.
	waitFor(t, 10*time.Second, "providers", func() bool {
		provs, err := nodes[2].FindProviders(ctx, ds[total-1], 1)
		return err == nil && len(provs) == 1 && provs[0].ID == n.ID()
	})
}
