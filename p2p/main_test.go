package p2p

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// libp2p and kad-dht log through go-log and gologshim; keep tests quiet.
	gologshim.SetDefaultHandler(slog.DiscardHandler)
	golog.SetAllLoggers(golog.LevelFatal)
	if os.Getenv("P2P_TEST_LOG") != "" {
		golog.SetAllLoggers(golog.LevelDebug)
	}
	// No goleak ignores: closing a Node stops every goroutine it started,
	// libp2p's included.
	goleak.VerifyTestMain(m)
}

// testConfig listens on loopback only, with small chunks and fast timers.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.FindTimeout = 5 * time.Second
	cfg.FindGrace = 50 * time.Millisecond
	cfg.Download.ChunkSize = 64 << 10
	cfg.Download.MaxRun = 4
	cfg.Download.StallTimeout = 5 * time.Second
	if os.Getenv("P2P_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// startNode builds and runs a node until the test ends.
func startNode(tb testing.TB, cfg Config, src BlobSource) *Node {
	tb.Helper()
	n, err := New(tb.Context(), cfg, src)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return n
}

// startFleet starts count nodes bootstrapped from the first one and waits
// until every routing table has a peer. srcs[i] (if any) serves node i.
func startFleet(tb testing.TB, count int, cfg Config, srcs ...BlobSource) []*Node {
	tb.Helper()
	nodes := make([]*Node, count)
	for i := range nodes {
		src := BlobSource(NewMemorySource())
		if i < len(srcs) && srcs[i] != nil {
			src = srcs[i]
		}
		c := cfg
		if i > 0 {
			c.Bootstrap = nodes[0].Addrs()
		}
		nodes[i] = startNode(tb, c, src)
	}
	waitFor(tb, 10*time.Second, "routing tables filled", func() bool {
		for _, n := range nodes {
			if !n.Ready() {
				return false
			}
		}
		return true
	})
	return nodes
}

// waitFor polls cond until it holds or the timeout passes (real network
// time cannot be faked with synctest).
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memFile is an in-memory io.WriterAt of fixed size.
type memFile struct {
	mu  sync.Mutex
	buf []byte
}

func newMemFile(size int64) *memFile { return &memFile{buf: make([]byte, size)} }

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copy(f.buf[off:], p), nil
}

func (f *memFile) Bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.buf...)
}
