package agent

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
)

// TestPullOutlivesAFailedSwarm: the only provider of a blob announces it
// but cannot serve it (its file is gone), so the puller's swarm gives up
// and the fetch goes on from the origin with a new write. The client's
// GET, which had not received a byte, follows that write and gets the
// blob (it failed with 500 before: CI, TestRollingUpgrade's warm-up).
func TestPullOutlivesAFailedSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the swarm to give up (10s): not in -short")
	}
	t.Parallel()
	origin := t.TempDir()
	store, err := filestore.New(origin)
	if err != nil {
		t.Fatal(err)
	}
	blob, d := randomBlob(77, 3<<20)
	if err := store.Put(t.Context(), objstore.BlobKey(d), bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	noSerf := func(c *config.Config) { c.Serf.Enabled = false }
	holder := startAgent(t, origin, noSerf)
	puller := startAgent(t, origin, noSerf, func(c *config.Config) {
		c.P2P.Bootstrap = []string{tcpAddr(t, holder)}
	})
	waitFor(t, "dht peers", 20*time.Second, func() bool { return puller.node.Stats().RoutingTablePeers > 0 })

	getBlob(t, holder, d, blob)
	waitCommitted(t, holder, d)
	waitFor(t, "the holder in the DHT", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return len(puller.fetch.Load().findProviders(ctx, d)) > 0
	})
	// The file goes behind the holder's back: its index (and its DHT
	// record) still say it has the blob; it answers every request 404.
	var gone bool
	err = filepath.WalkDir(holder.cfg.DataDir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && e.Name() == d.Encoded() {
			gone = true
			return os.Remove(path)
		}
		return err
	})
	if err != nil || !gone {
		t.Fatalf("remove the holder's copy: found %v, %v", gone, err)
	}

	start := time.Now()
	getBlob(t, puller, d, blob)
	t.Logf("pulled through a failed swarm in %v", time.Since(start).Round(time.Millisecond))
	if got := puller.metric(t, `shoal_fetch_bytes_total{source="origin"}`); got < float64(len(blob)) {
		t.Fatalf("origin bytes %v: the blob did not come from the origin", got)
	}
	// One swarm gave up; the fetches after it left the provider that
	// failed out (each swarm with it costs the swarm's whole patience).
	if got := puller.metric(t, "shoal_swarm_failures_total"); got != 1 {
		t.Fatalf("%v swarm downloads gave up, want 1", got)
	}
}
