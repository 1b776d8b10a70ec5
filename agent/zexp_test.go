package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"syscall"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

type zdiscard struct{}

func (zdiscard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func BenchmarkZExp(b *testing.B) {
	const size = 1 << 30
	origin := b.TempDir()
	src := startAgent(b, origin)
	d := seedCache(b, src, size)
	ctx := context.Background()
	providers := []peer.AddrInfo{{ID: src.node.Host().ID(), Addrs: src.node.Host().Addrs()}}
	for i := 0; i < b.N; i++ {
		dst := startPeers(b, 1, origin, src)[0]
		waitFor(b, "provider record", 20*time.Second, func() bool {
			provs, _ := dst.node.FindProviders(context.Background(), d, 1)
			return len(provs) > 0
		})
		var ru0 syscall.Rusage
		cpu := func(t time.Time) string {
			var ru syscall.Rusage
			syscall.Getrusage(0, &ru)
			u := time.Duration(ru.Utime.Nano()+ru.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano())
			return fmt.Sprintf("cpu %.2f cores", u.Seconds()/time.Since(t).Seconds())
		}
		_ = cpu
		mbps := func(t time.Time) float64 { return size / time.Since(t).Seconds() / 1e6 }
		// 1: download to discard
		syscall.Getrusage(0, &ru0)
		t0 := time.Now()
		if _, err := dst.node.Download(ctx, d, size, providers, zdiscard{}); err != nil {
			b.Fatal(err)
		}
		b.Logf("discard: %.0f MB/s %s", mbps(t0), cpu(t0))
		// 1b: plain file
		pf, _ := os.CreateTemp(b.TempDir(), "plain")
		syscall.Getrusage(0, &ru0)
		t0 = time.Now()
		if _, err := dst.node.Download(ctx, d, size, providers, pf); err != nil {
			b.Fatal(err)
		}
		b.Logf("plain file: %.0f MB/s %s", mbps(t0), cpu(t0))
		pf.Close()
		os.Remove(pf.Name())
		// 2: download into cas writer + commit
		syscall.Getrusage(0, &ru0)
		t0 = time.Now()
		w, err := dst.cas.Create(ctx, d, size, cas.WriteOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dst.node.Download(ctx, d, size, providers, w); err != nil {
			b.Fatal(err)
		}
		b.Logf("cas writer (download): %.0f MB/s %s", mbps(t0), cpu(t0))
		if _, err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("cas writer+commit: %.0f MB/s %s", mbps(t0), cpu(t0))
		if err := dst.cas.Delete(ctx, d); err != nil {
			b.Log(err)
		}
		// 3: full http path
		syscall.Getrusage(0, &ru0)
		t0 = time.Now()
		resp, err := http.Get(dst.url("/v2/bench/blob/blobs/" + d.String()))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{resp.Body}, make([]byte, 1<<20))
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("peer pull: %d bytes, %v", n, err)
		}
		b.Logf("http full: %.0f MB/s %s", mbps(t0), cpu(t0))
		dst.stop()
	}
}

var _ = digest.SHA256
