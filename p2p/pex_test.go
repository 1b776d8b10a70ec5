package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

func TestPexBook(t *testing.T) {
	t.Parallel()
	var b pexBook
	d := digest.FromString("blob")
	now := time.Now()
	ids := make([]peer.ID, pexKeep+4)
	for i := range ids {
		ids[i] = peer.ID(fmt.Sprintf("peer-%02d", i))
		b.note(d, ids[i], now.Add(time.Duration(i)*time.Millisecond))
	}
	later := now.Add(time.Second)
	got := b.others(d, ids[len(ids)-1], later)
	if len(got) != pexShare {
		t.Fatalf("others: %d peers, want %d", len(got), pexShare)
	}
	for i, id := range got { // newest first, the asker itself left out
		if want := ids[len(ids)-2-i]; id != want {
			t.Fatalf("others[%d] = %s, want %s", i, id, want)
		}
	}
	// Asking again moves a peer to the front; stale askers are not named.
	b.note(d, ids[0], later)
	if got := b.others(d, "", later); got[0] != ids[0] {
		t.Fatalf("re-asker not first: %v", got)
	}
	if got := b.others(d, "", later.Add(pexFresh+time.Second)); len(got) != 0 {
		t.Fatalf("stale askers named: %v", got)
	}
	// The book forgets the least recently asked blobs.
	for i := range pexBlobs + 1 {
		b.note(digest.FromString(fmt.Sprint(i)), ids[1], later)
	}
	if len(b.blobs) > pexBlobs || b.blobs[d] != nil {
		t.Fatalf("book holds %d blobs (first one kept: %v), want at most %d without the oldest", len(b.blobs), b.blobs[d] != nil, pexBlobs)
	}
}

func TestParsePeers(t *testing.T) {
	t.Parallel()
	id1, id2 := "QmSectx9PDMfUapYB7H82nM6E9e77ykdwT1EAqmDuPB7Go", "QmULEoyhh589bEaVp5sMixpWi7VtjCvU6x1D5LEz1Yrd3d"
	got := parsePeers(id1 + " /ip4/127.0.0.1/tcp/4001, not-a-peer, " + id2 + ", " + id1 + " /bad/addr, a b c")
	if len(got) != 3 || got[0].ID.String() != id1 || len(got[0].Addrs) != 1 || got[1].ID.String() != id2 || len(got[2].Addrs) != 0 {
		t.Fatalf("parsePeers = %v", got)
	}
	var many bytes.Buffer
	for range 3 * pexShare {
		many.WriteString(id1 + ",")
	}
	if got := parsePeers(many.String()); len(got) != pexShare {
		t.Fatalf("parsePeers kept %d entries, want at most %d", len(got), pexShare)
	}
}

// A downloader that knows only one provider learns the others from its
// answers (Shoal-Peers): here the first provider holds half the blob and
// the only holder of the other half is a peer that asked it a moment ago.
// Without peer exchange the download cannot finish.
func TestSwarmLearnsPeersFromAnswers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	blob, d, half, a, b := halfHolders(11)
	nodes := startFleet(t, 3, testConfig(), nil, a, b)
	me, pa, pb := nodes[0], nodes[1], nodes[2]
	if _, err := pb.Availability(ctx, peer.AddrInfo{ID: pa.ID(), Addrs: pa.Host().Addrs()}, d); err != nil {
		t.Fatal(err)
	}
	me.Host().Peerstore().AddAddrs(pb.ID(), pb.Host().Addrs(), time.Minute) // as serf would

	dst := newMemFile(int64(len(blob)))
	st, err := me.Swarm(ctx, d, int64(len(blob)), []peer.AddrInfo{{ID: pa.ID(), Addrs: pa.Host().Addrs()}}, dst, SwarmOptions{ChunkSize: 64 << 10, GiveUp: 3 * time.Second})
	if err != nil {
		t.Fatalf("Swarm knowing one provider: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("swarmed bytes differ")
	}
	if st.BytesByPeer[pb.ID()] != half {
		t.Fatalf("bytes by peer %v; want %d from the peer learnt by exchange", st.BytesByPeer, half)
	}
}

// A peer's Shoal-Peers header is untrusted input: whatever it says, the
// parser keeps at most pexShare entries, each a valid peer ID.
func FuzzParsePeers(f *testing.F) {
	f.Add("QmSectx9PDMfUapYB7H82nM6E9e77ykdwT1EAqmDuPB7Go /ip4/127.0.0.1/tcp/4001, x")
	f.Add(", , ,")
	f.Fuzz(func(t *testing.T, v string) {
		got := parsePeers(v)
		if len(got) > pexShare {
			t.Fatalf("%d entries", len(got))
		}
		for _, ai := range got {
			if err := ai.ID.Validate(); err != nil {
				t.Fatalf("invalid peer ID %q kept: %v", ai.ID, err)
			}
		}
	})
}

// A host that has nothing of a blob yet (a lock holder still planning its
// fetch) answers 404, and still names the peers that asked it for the
// blob: they are the swarm its askers should join.
func TestPeersNamedBeforeTheBlob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	nodes := startFleet(t, 3, testConfig())
	holder, first, second := nodes[0], nodes[1], nodes[2]
	d := digest.FromBytes([]byte("not here yet"))
	at := peer.AddrInfo{ID: holder.ID(), Addrs: holder.Host().Addrs()}

	a, err := first.Availability(ctx, at, d)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("first asker: err %v; want not found", err)
	}
	if len(a.Peers) != 0 {
		t.Fatalf("first asker was named %v; nobody asked before it", a.Peers)
	}
	a, err = second.Availability(ctx, at, d)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("second asker: err %v; want not found", err)
	}
	if len(a.Peers) != 1 || a.Peers[0].ID != first.ID() {
		t.Fatalf("second asker was named %v; want the first asker %s", a.Peers, first.ID())
	}
}

// A swarm whose only provider has nothing yet (404) waits for it instead
// of dropping it as failed: the host is told to copy from the origin lock's
// holder, which may still be planning its fetch.
func TestSwarmWaitsForAnEmptyProvider(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	src := NewMemorySource()
	nodes := startFleet(t, 2, testConfig(), nil, src)
	me, holder := nodes[0], nodes[1]
	blob := randomBlob(17, 256<<10)
	d := digest.FromBytes(blob)
	time.AfterFunc(time.Second, func() { src.PutAs(d, blob) }) // 3 failed questions' time, and more

	dst := newMemFile(int64(len(blob)))
	st, err := me.Swarm(ctx, d, int64(len(blob)), []peer.AddrInfo{{ID: holder.ID(), Addrs: holder.Host().Addrs()}}, dst, SwarmOptions{ChunkSize: 64 << 10, GiveUp: 5 * time.Second})
	if err != nil {
		t.Fatalf("Swarm from a provider that gets the blob a second later: %v", err)
	}
	if !bytes.Equal(dst.Bytes(), blob) {
		t.Fatal("swarmed bytes differ")
	}
	if st.BytesByPeer[holder.ID()] != int64(len(blob)) {
		t.Fatalf("bytes by peer %v; want all %d from the holder", st.BytesByPeer, len(blob))
	}
}
