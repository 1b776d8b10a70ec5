package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"github.com/shoal-dev/shoal/p2p"
)

// pacedStore is an object store whose reads of one key arrive at rate
// bytes per second, all readers together, and stop once all but hold bytes
// of it were handed out, until open is called: the origin of a test that
// needs its reader to be still receiving while others pull.
type pacedStore struct {
	objstore.Store
	key  string
	size int64
	rate float64 // bytes per second
	hold int64

	read    atomic.Int64  // bytes of key handed out
	reached chan struct{} // closed when a reader first waits at the gate
	gate    chan struct{} // closed by open

	mu          sync.Mutex
	start       time.Time
	reserved    int64
	reachedOnce sync.Once
	openOnce    sync.Once
}

func newPacedStore(s objstore.Store, key string, size int64, rate float64, hold int64) *pacedStore {
	return &pacedStore{Store: s, key: key, size: size, rate: rate, hold: hold,
		reached: make(chan struct{}), gate: make(chan struct{})}
}

// open lets the held bytes through, unpaced.
func (p *pacedStore) open() { p.openOnce.Do(func() { close(p.gate) }) }

func (p *pacedStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := p.Store.Get(ctx, key, offset, length)
	if err != nil || key != p.key {
		return rc, err
	}
	return &pacedReader{ReadCloser: rc, ctx: ctx, p: p}, nil
}

// take returns how many of the n bytes a reader wants it may read now,
// after waiting for their turn (or for the gate).
func (p *pacedStore) take(ctx context.Context, n int64) (int64, error) {
	p.mu.Lock()
	if p.start.IsZero() {
		p.start = time.Now()
	}
	limit := p.size - p.hold
	if p.reserved >= limit {
		p.mu.Unlock()
		p.reachedOnce.Do(func() { close(p.reached) })
		select {
		case <-p.gate:
			return n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n = min(n, limit-p.reserved)
	p.reserved += n
	due := p.start.Add(time.Duration(float64(p.reserved) / p.rate * float64(time.Second)))
	p.mu.Unlock()
	t := time.NewTimer(time.Until(due))
	defer t.Stop()
	select {
	case <-t.C:
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

type pacedReader struct {
	io.ReadCloser
	ctx context.Context
	p   *pacedStore
}

func (r *pacedReader) Read(b []byte) (int, error) {
	n, err := r.p.take(r.ctx, int64(min(len(b), 256<<10)))
	if err != nil {
		return 0, err
	}
	k, err := r.ReadCloser.Read(b[:n])
	r.p.read.Add(int64(k))
	return k, err
}

// pullResult is one client's GET of a blob.
type pullResult struct {
	start, end time.Time
	bytes      int64
	got        digest.Digest
	err        error
}

// pullBlob GETs d from a and hashes what arrives.
func pullBlob(ctx context.Context, a *testAgent, d digest.Digest) (r pullResult) {
	r.start = time.Now()
	defer func() { r.end = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url("/v2/swarm/blob/blobs/"+d.String()), nil)
	if err != nil {
		r.err = err
		return r
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.err = fmt.Errorf("GET: %s", resp.Status)
		return r
	}
	h := sha256.New()
	r.bytes, r.err = io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
	r.got = digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	return r
}

// TestSwarmSixAgents (issue 10, acceptance 3): while agent A is still
// receiving a blob from a slow origin, agents B–F, which pull it too,
// receive ranges of it from each other, not only from A. The origin is
// read once, by A; every pull is byte-identical.
//
// A's uplink carries twice the origin's rate (uplinkHost), as a NIC
// would: on bare loopback A is an infinitely fast source, B–F have no
// reason to trade, and the early share was noise (9–23%).
//
// The origin hands out the blob at swarmOriginRate and holds its last
// sixteenth back until the test has read the counters, so "before A
// committed" is an ordering, not a timing. The blob is 512 MiB
// (swarmBlobSize); under -race it is 64 MiB, which keeps the test under a
// minute on two cores (swarmsize_race_test.go). Full size, with the
// numbers in docs/BENCHMARKS.md:
//
//	go test -run TestSwarmSixAgents -v -count=1 ./agent/
func TestSwarmSixAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("six agents and a large blob: not in -short")
	}
	const size = swarmBlobSize
	dir := t.TempDir()
	fs, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := patternDigest(size)
	if err := fs.Put(t.Context(), objstore.BlobKey(d), newPatternReader(size), size); err != nil {
		t.Fatal(err)
	}
	origin := newPacedStore(fs, objstore.BlobKey(d), size, swarmOriginRate, size/16)
	t.Cleanup(origin.open) // never leave a reader at the gate
	// A's uplink carries twice what the origin sends it: a real NIC, so
	// that B–F, at the origin's pace together, cannot all be served by A.
	fleet := startSerfFleetEach(t, dir, []string{"a", "a", "a", "a", "a", "a"}, func(i int) []Option {
		if i > 0 {
			return nil
		}
		up := newUplinkHost(t, 2*swarmOriginRate)
		return []Option{WithP2PConfig(func(c *p2p.Config) { c.Host = up })}
	}, WithOriginStore(origin))
	names := "ABCDEF"
	a, rest := fleet[0], fleet[1:]

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	results := make([]pullResult, len(fleet))
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after cancel, when the test stops early
	begin := time.Now()
	wg.Go(func() { results[0] = pullBlob(ctx, a, d) })
	// B–F start once A reads the origin: A holds the group's origin lock
	// and announced the blob before reading, so they find A in the DHT (or
	// wait for the lock until they do) and take the blob from peers.
	waitFor(t, "A reading the origin", time.Minute, func() bool { return origin.read.Load() > 0 })
	t.Logf("A reads the origin at +%s", time.Since(begin).Round(time.Millisecond))
	for i, b := range rest {
		wg.Go(func() { results[i+1] = pullBlob(ctx, b, d) })
	}

	served := func(x *testAgent) float64 { return x.metric(t, "shoal_peer_bytes_served_total") }
	select {
	case <-origin.reached:
	case <-ctx.Done():
		t.Fatal("the origin's reader never reached the held bytes")
	}
	// A has not committed (it lacks the held bytes): what B–F have served
	// so far went from one of them to another while A was still receiving.
	if _, err := a.cas.Stat(ctx, d); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("A's copy before the held bytes: %v, want not committed", err)
	}
	earlyA, earlyRest := served(a), 0.0
	for _, b := range rest {
		earlyRest += served(b)
	}
	origin.open()
	wg.Wait()

	// Every pull is byte-identical.
	for i, r := range results {
		if r.err != nil || r.bytes != size || r.got != d {
			t.Fatalf("%c: %d bytes hashing to %s: %v; want %d bytes of %s", names[i], r.bytes, r.got, r.err, size, d)
		}
	}
	var (
		servedBy     = make([]float64, len(fleet))
		originBytes  float64
		restReceived float64 // bytes B–F received from peers
		restServed   float64
		servers      int // B–F that served bytes
		traders      int // B–F that received bytes from peers other than A
	)
	var report strings.Builder
	fmt.Fprintf(&report, "%d MiB blob, origin paced at %.0f MiB/s, held from %d MiB until the counters were read\n",
		size>>20, float64(swarmOriginRate)/(1<<20), (size-size/16)>>20)
	for i, x := range fleet {
		servedBy[i] = served(x)
		o := x.metric(t, `shoal_fetch_bytes_total{source="origin"}`)
		p := x.metric(t, `shoal_fetch_bytes_total{source="peer"}`)
		originBytes += o
		r := results[i]
		var top []string
		var fromOthers int64 // bytes from peers other than A
		for _, f := range x.status().Fetches {
			if f.Digest != d.String() {
				continue
			}
			fromOthers = f.PeerBytes
			for _, pb := range f.Peers {
				top = append(top, fmt.Sprintf("%s %d MiB", pb.Node, pb.Bytes>>20))
				if pb.ID == a.node.ID().String() {
					fromOthers -= pb.Bytes
				}
			}
		}
		fmt.Fprintf(&report, "%c (%s): pull %s (started +%s; DHT lookups %.1fs in %.0f, lock wait %.1fs), served %.0f MiB, received %.0f MiB from the origin and %.0f MiB from peers (%d MiB not from A; top: %s)\n",
			names[i], x.cfg.NodeName, r.end.Sub(r.start).Round(time.Millisecond), r.start.Sub(results[0].start).Round(time.Millisecond),
			x.metric(t, "shoal_dht_find_seconds_sum"), x.metric(t, "shoal_dht_find_seconds_count"), x.metric(t, "shoal_origin_lock_wait_seconds_sum"),
			servedBy[i]/(1<<20), o/(1<<20), p/(1<<20), fromOthers>>20, strings.Join(top, ", "))
		if i == 0 {
			continue
		}
		restReceived += p
		restServed += servedBy[i]
		if servedBy[i] > 0 {
			servers++
		}
		if fromOthers > 0 {
			traders++
		}
	}
	fmt.Fprintf(&report, "while A was receiving: A had served %.0f MiB, B–F %.0f MiB to each other (%.0f%%)\n",
		earlyA/(1<<20), earlyRest/(1<<20), 100*earlyRest/(earlyA+earlyRest))
	fmt.Fprintf(&report, "total: origin read %.0f MiB (%.2f× the blob); B–F served %.0f%% of the %.0f MiB they received from peers",
		originBytes/(1<<20), originBytes/size, 100*restServed/restReceived, restReceived/(1<<20))
	t.Log(report.String())

	if originBytes < size || originBytes > size+size/64 || float64(origin.read.Load()) > size+size/64 {
		t.Errorf("the origin served %.0f bytes (%d read from the store), want the blob (%d) once", originBytes, origin.read.Load(), size)
	}
	// A star (every byte from A) gives 0%; the swarm measured 24–39%.
	if restServed < 0.15*restReceived {
		t.Errorf("B–F served %.0f of the %.0f bytes they received from peers, want at least 15%%", restServed, restReceived)
	}
	// Which of B–F take everything from A varies from run to run (up to two
	// of five under -race).
	if servers < 3 || traders < 2 {
		t.Errorf("%d of B–F served bytes to others and %d received bytes from peers other than A, want at least 3 and 2", servers, traders)
	}
	if earlyRest == 0 || earlyRest < 0.15*(earlyA+earlyRest) {
		t.Errorf("before A committed, B–F had served %.0f bytes to each other and A %.0f, want B–F at least 15%%", earlyRest, earlyA)
	}
}
