package sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// shapedPair returns two linked mock hosts with the given link speed.
func shapedPair(t *testing.T, rate Bandwidth) (a, b *shapedHost) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	var hosts [2]*shapedHost
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = &shapedHost{Host: h, up: newLink(rate), down: newLink(rate), served: new(atomic.Int64)}
	}
	if _, err := mn.LinkPeers(hosts[0].ID(), hosts[1].ID()); err != nil {
		t.Fatal(err)
	}
	return hosts[0], hosts[1]
}

// TestShapedLink: HTTP over a shaped mock stream runs at the link speed,
// and two downloads from one host share its uplink.
func TestShapedLink(t *testing.T) {
	t.Parallel()
	const rate = 2 << 20 // bytes per second
	const size = 1 << 20
	a, b := shapedPair(t, rate)
	ln, err := gostream.Listen(a, "/test/1")
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return gostream.Dial(ctx, b, a.ID(), "/test/1")
	}}}
	get := func() time.Duration {
		start := time.Now()
		resp, err := client.Get("http://x/")
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size {
			t.Errorf("got %d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	one := get()
	var wg sync.WaitGroup
	var two [2]time.Duration
	for i := range two {
		wg.Go(func() { two[i] = get() })
	}
	wg.Wait()
	t.Logf("1 MiB at 2 MiB/s: alone %v, two at once %v and %v", one, two[0], two[1])
	if one < 400*time.Millisecond || one > 700*time.Millisecond {
		t.Errorf("alone: %v, want about 500ms", one)
	}
	for _, d := range two {
		if d < 800*time.Millisecond || d > 1300*time.Millisecond {
			t.Errorf("sharing the uplink: %v, want about 1s", d)
		}
	}
}
