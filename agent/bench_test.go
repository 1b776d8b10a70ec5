package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// patternReader yields n deterministic bytes: a random 1 MiB block, each
// copy stamped with its index so no two MiB are equal.
type patternReader struct {
	block    []byte
	off, n   int64
	stampBuf [8]byte
}

func newPatternReader(n int64) *patternReader {
	block, _ := randomBlob(42, 1<<20)
	return &patternReader{block: block, n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	i := p.off % int64(len(p.block))
	k := copy(b, p.block[i:])
	if int64(k) > p.n-p.off {
		k = int(p.n - p.off)
	}
	if i < 8 { // stamp the block index over the first 8 bytes
		binary.LittleEndian.PutUint64(p.stampBuf[:], uint64(p.off/int64(len(p.block))))
		copy(b[:k], p.stampBuf[i:])
	}
	p.off += int64(k)
	return k, nil
}

// patternDigest is the sha256 digest of the n bytes newPatternReader yields.
func patternDigest(n int64) digest.Digest {
	h := sha256.New()
	io.Copy(h, newPatternReader(n))
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

// seedCache writes n pattern bytes into the agent's cache and returns the digest.
func seedCache(b testing.TB, a *testAgent, n int64) digest.Digest {
	d := patternDigest(n)
	ctx := context.Background()
	w, err := a.cas.Create(ctx, d, n, cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyBuffer(w, newPatternReader(n), make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if _, err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return d
}

// serveBlobTCP sends the cached blob d with sendfile to every connection on
// a loopback listener: the raw-TCP baseline of the benchmarks.
func serveBlobTCP(b *testing.B, a *testAgent, d digest.Digest) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if f, _, err := a.cas.Open(context.Background(), d); err == nil {
				io.Copy(c, f)
				f.Close()
			}
			c.Close()
		}
	}()
	return ln
}

// onlyWriter hides ReaderFrom so copies use the given buffer.
type onlyWriter struct{ io.Writer }

// BenchmarkServeCachedBlob compares serving a cached 1 GiB blob over
// loopback HTTP with reading the same file from disk, in the same run.
func BenchmarkServeCachedBlob(b *testing.B) {
	const size = 1 << 30
	a := startAgent(b, "")
	d := seedCache(b, a, size)
	buf := make([]byte, 1<<20)
	readDisk := func() time.Duration {
		f, _, err := a.cas.Open(context.Background(), d)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{f}, buf)
		if err != nil || n != size {
			b.Fatalf("disk read: %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	readHTTP := func() time.Duration {
		start := time.Now()
		resp, err := client.Get(a.url("/v2/bench/blob/blobs/" + d.String()))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
		if err != nil || n != size || resp.StatusCode != http.StatusOK {
			b.Fatalf("http read: %s, %d bytes, %v", resp.Status, n, err)
		}
		return time.Since(start)
	}
	// The ceiling: the same file sent with sendfile over a raw loopback TCP
	// connection, read with the same buffer.
	ln := serveBlobTCP(b, a, d)
	readTCP := func() time.Duration {
		start := time.Now()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if n, err := io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{c}, buf); err != nil || n != size {
			b.Fatalf("tcp read: %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	// Cold reads need the page cache dropped (root only); otherwise skipped.
	dropCaches := func() bool {
		return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
	}
	readDisk() // warm the page cache, as a cached blob on a busy host is
	var disk, web, tcp, coldDisk, coldWeb time.Duration
	cold := dropCaches()
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if cold {
			dropCaches()
			coldDisk += readDisk()
			dropCaches()
			coldWeb += readHTTP()
		}
		disk += readDisk()
		web += readHTTP()
		tcp += readTCP()
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(disk), "disk-MB/s")
	b.ReportMetric(mbps(web), "http-MB/s")
	b.ReportMetric(mbps(tcp), "rawtcp-MB/s")
	b.ReportMetric(disk.Seconds()/web.Seconds(), "http/disk")
	b.ReportMetric(tcp.Seconds()/web.Seconds(), "http/rawtcp")
	b.Logf("page cache: disk %.0f MB/s, http %.0f MB/s, raw tcp sendfile %.0f MB/s; http/disk %.2f, http/rawtcp %.2f",
		mbps(disk), mbps(web), mbps(tcp), disk.Seconds()/web.Seconds(), tcp.Seconds()/web.Seconds())
	if cold {
		b.ReportMetric(coldDisk.Seconds()/coldWeb.Seconds(), "cold-http/disk")
		b.Logf("cold cache: disk %.0f MB/s, http %.0f MB/s; http/disk %.2f", mbps(coldDisk), mbps(coldWeb), coldDisk.Seconds()/coldWeb.Seconds())
	}
}

// BenchmarkPeerTransfer compares a one-hop transfer of a 1 GiB blob between
// two agents (B pulls from A over libp2p, verifying and committing it) with
// a raw loopback TCP copy of the same bytes, in the same run.
func BenchmarkPeerTransfer(b *testing.B) {
	const size = 1 << 30
	origin := b.TempDir()
	src := startAgent(b, origin)
	d := seedCache(b, src, size)
	buf := make([]byte, 1<<20)
	ln := serveBlobTCP(b, src, d)
	var p2pTime, tcpTime, diskTime, p2pCPU time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		dst := startPeers(b, 1, origin, src)[0]
		waitFor(b, "provider record", 20*time.Second, func() bool {
			provs, _ := dst.node.FindProviders(context.Background(), d, 1)
			return len(provs) > 0
		})
		b.StartTimer()
		start, cpu := time.Now(), processCPU()
		resp, err := http.Get(dst.url("/v2/bench/blob/blobs/" + d.String()))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("peer pull: %d bytes, %v", n, err)
		}
		p2pTime += time.Since(start)
		p2pCPU += processCPU() - cpu

		start = time.Now()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		n, err = io.CopyBuffer(onlyWriter{io.Discard}, struct{ io.Reader }{c}, buf)
		c.Close()
		if err != nil || n != size {
			b.Fatalf("tcp copy: %d bytes, %v", n, err)
		}
		tcpTime += time.Since(start)
		diskTime += rawTCPToFile(b, ln.Addr().String(), buf)
		b.StopTimer()
		dst.stop()
		b.StartTimer()
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(p2pTime), "p2p-MB/s")
	b.ReportMetric(mbps(tcpTime), "rawtcp-MB/s")
	b.ReportMetric(tcpTime.Seconds()/p2pTime.Seconds(), "p2p/rawtcp")
	b.ReportMetric(mbps(diskTime), "rawtcp-to-disk-MB/s")
	b.ReportMetric(diskTime.Seconds()/p2pTime.Seconds(), "p2p/rawtcp-to-disk")
	// Cores busy during the transfer (both agents and the client): well
	// under GOMAXPROCS means the transfer waits on something, not on CPU.
	cores := p2pCPU.Seconds() / p2pTime.Seconds()
	b.ReportMetric(cores, "p2p-cores")
	b.Logf("1 GiB one hop: agent-to-agent %.0f MB/s (%.2f cores busy); raw loopback TCP into memory %.0f MB/s, ratio %.2f; raw loopback TCP into a synced file %.0f MB/s, ratio %.2f",
		mbps(p2pTime), cores, mbps(tcpTime), tcpTime.Seconds()/p2pTime.Seconds(), mbps(diskTime), diskTime.Seconds()/p2pTime.Seconds())
}

// rawTCPToFile is the copy baseline that does what a pull must do with the
// bytes: it reads the blob from the listener at addr into a new file on
// the benchmark's disk and syncs it, as the agent's commit does. It
// returns the time from dial to the end of the sync.
func rawTCPToFile(b *testing.B, addr string, buf []byte) time.Duration {
	b.Helper()
	f, err := os.CreateTemp(b.TempDir(), "rawcopy-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(onlyWriter{f}, struct{ io.Reader }{c}, buf)
	c.Close()
	if err != nil || n != 1<<30 {
		b.Fatalf("tcp copy to file: %d bytes, %v", n, err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
