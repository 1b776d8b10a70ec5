package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
	"github.com/shoal-dev/shoal/locks"
)

// startSerfFleet starts agents on one origin, the first one's serf address
// joined by the rest, with groups[i] as agent i's group, and waits until
// every agent sees every member alive and has DHT peers. opts go to every
// agent's New.
func startSerfFleet(t *testing.T, origin string, groups []string, opts ...Option) []*testAgent {
	t.Helper()
	return startSerfFleetEach(t, origin, groups, nil, opts...)
}

// startSerfFleetEach is startSerfFleet with more options for some agents:
// each(i) is added to agent i's.
func startSerfFleetEach(t *testing.T, origin string, groups []string, each func(i int) []Option, opts ...Option) []*testAgent {
	t.Helper()
	fleet := make([]*testAgent, len(groups))
	begin := time.Now()
	defer func() { t.Logf("fleet of %d ready in %s", len(groups), time.Since(begin).Round(time.Millisecond)) }()
	for i, g := range groups {
		o := opts
		if each != nil {
			o = append(slices.Clone(opts), each(i)...)
		}
		fleet[i] = startAgentWith(t, origin, o, func(c *config.Config) {
			c.NodeName = fmt.Sprintf("node-%02d", i)
			c.Group = g
			if i > 0 {
				c.Serf.Join = []string{fleet[0].cluster.Self().Addr}
			}
		})
	}
	waitFor(t, "membership and DHT", 60*time.Second, func() bool {
		for _, a := range fleet {
			alive := 0
			for _, m := range a.cluster.Members() {
				if m.Status == locks.StatusAlive {
					alive++
				}
			}
			if alive != len(fleet) || a.node.Stats().RoutingTablePeers == 0 {
				return false
			}
		}
		return true
	})
	return fleet
}

// originWithBlob returns a file object store holding a random blob.
func originWithBlob(t *testing.T, seed uint64, size int) (string, []byte, digest.Digest) {
	t.Helper()
	origin := t.TempDir()
	store, err := filestore.New(origin)
	if err != nil {
		t.Fatal(err)
	}
	blob, d := randomBlob(seed, size)
	if err := store.Put(t.Context(), objstore.BlobKey(d), bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	return origin, blob, d
}

// fetchChecked GETs d from a's registry under repo and checks the bytes.
func fetchChecked(t *testing.T, a *testAgent, repo string, blob []byte, d digest.Digest, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.url("/v2/"+repo+"/blobs/"+d.String()), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob)) {
		err = fmt.Errorf("status %d, %d bytes, identical %v", resp.StatusCode, len(body), bytes.Equal(body, blob))
	}
	return err
}

// TestOriginOncePerGroup: hosts that miss the same blob at the same moment,
// with no peer holding it, read the origin once per group; every host gets
// identical bytes.
func TestOriginOncePerGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	for _, tc := range []struct {
		name   string
		groups []string
	}{
		{"one group of 8", []string{"a", "a", "a", "a", "a", "a", "a", "a"}},
		{"two groups of 4", []string{"a", "a", "a", "a", "b", "b", "b", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin, blob, d := originWithBlob(t, 4242, 24<<20)
			fleet := startSerfFleet(t, origin, tc.groups)
			groups := map[string]bool{}
			for _, g := range tc.groups {
				groups[g] = true
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, len(fleet))
			for i, a := range fleet {
				wg.Go(func() {
					<-start
					errs[i] = fetchChecked(t, a, "dedup/repo", blob, d, 60*time.Second)
				})
			}
			pullStart := time.Now()
			close(start)
			wg.Wait()
			t.Logf("pulls took %s", time.Since(pullStart).Round(time.Millisecond))
			t.Cleanup(func() { t.Logf("stopping fleet at %s", time.Now().Format("15:04:05.000")) })
			var originBytes, peerBytes float64
			for i, a := range fleet {
				if errs[i] != nil {
					t.Fatalf("%s: %v", a.cfg.NodeName, errs[i])
				}
				t.Logf("%s: lock wait %.2fs over %.0f waits, dht find %.2fs over %.0f lookups", a.cfg.NodeName,
					a.metric(t, "shoal_origin_lock_wait_seconds_sum"), a.metric(t, "shoal_origin_lock_wait_seconds_count"),
					a.metric(t, "shoal_dht_find_seconds_sum"), a.metric(t, "shoal_dht_find_seconds_count"))
				originBytes += a.metric(t, `shoal_fetch_bytes_total{source="origin"}`)
				peerBytes += a.metric(t, `shoal_fetch_bytes_total{source="peer"}`)
			}
			reads := originBytes / float64(len(blob))
			t.Logf("%d hosts, %d groups: origin served %.2f× the blob, peers %.2f×", len(fleet), len(groups), reads, peerBytes/float64(len(blob)))
			if reads > float64(len(groups)) {
				t.Fatalf("the origin served the blob %.2f times, want at most once per group (%d)", reads, len(groups))
			}
		})
	}
}

// TestReaderKeepsTheLock: the host that read a blob from the origin keeps
// its fetch lock for a while after the commit (readerLinger), so a host
// that wants the blob later is sent to it by the lock, without a DHT
// lookup and without a second origin read; and two requests on one host
// for a blob nobody has share one fetch (the second is told its own host
// holds the lock, and follows that fetch instead of waiting for the lock).
func TestReaderKeepsTheLock(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	origin, blob, d := originWithBlob(t, 77, 8<<20)
	fleet := startSerfFleet(t, origin, []string{"a", "a", "a"})
	get := func(a *testAgent) error { return fetchChecked(t, a, "linger/repo", blob, d, 20*time.Second) }
	reader, late, other := fleet[0], fleet[1], fleet[2]

	// Two requests at once on the reader: one fetch, one origin read.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = get(reader) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d on the reader: %v", i, err)
		}
	}
	if got := reader.metric(t, `shoal_fetch_bytes_total{source="origin"}`); got != float64(len(blob)) {
		t.Fatalf("the reader read %.0f bytes from the origin; want the blob once (%d)", got, len(blob))
	}

	// The lock is still the reader's after the commit.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := other.lockService.Acquire(ctx, fetchLockName(d), locks.AcquireOptions{})
	if err == nil {
		l.Release(ctx)
		t.Fatal("the fetch lock was free right after the reader's commit; want it kept by the reader")
	}
	var held *locks.HeldError
	if !errors.As(err, &held) || !slices.Contains(held.Holders, reader.cfg.NodeName) {
		t.Fatalf("acquire after the commit: %v; want held by %s", err, reader.cfg.NodeName)
	}

	// A later host copies from the reader, found through the lock.
	finds := late.metric(t, "shoal_dht_find_seconds_count")
	if err := get(late); err != nil {
		t.Fatalf("late host: %v", err)
	}
	if got := late.metric(t, `shoal_fetch_bytes_total{source="origin"}`); got != 0 {
		t.Fatalf("the late host read %.0f bytes from the origin; want none", got)
	}
	if got := late.metric(t, "shoal_dht_find_seconds_count"); got != finds {
		t.Fatalf("the late host made %.0f DHT lookups; want none (the lock named the reader)", got-finds)
	}
}
