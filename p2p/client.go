package p2p

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/opencontainers/go-digest"
)

// newPeerClient returns an HTTP client whose connections are libp2p
// streams: the URL host is the peer ID (see hostOf).
func newPeerClient(h host.Host) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			name, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			p, err := peer.Decode(name)
			if err != nil {
				return nil, fmt.Errorf("peer address %q: %w", name, err)
			}
			return gostream.Dial(ctx, h, p, BlobProtocol)
		},
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
		// Multiplexing is libp2p's job; each HTTP/1.1 connection is a stream.
		ForceAttemptHTTP2: false,
	}
	return &http.Client{Transport: tr}
}

func blobURL(p peer.ID, d digest.Digest) string {
	return "http://" + hostOf(p) + "/blobs/" + d.String()
}

// maxErrorBody is how much of an error answer is read to keep its
// connection for the next request.
const maxErrorBody = 4 << 10

// statusError is an unexpected response status from a peer.
type statusError struct {
	code int
	busy string // HeaderBusy of a 503
}

func (e *statusError) Error() string { return "peer answered " + http.StatusText(e.code) }

// checkStatus returns nil when resp has one of the wanted statuses. On any
// other it reads the (short) error body, so that the caller's Close leaves
// the connection reusable: a swarm gets many "busy" answers, and a closed
// connection costs a new stream for the next request.
func checkStatus(resp *http.Response, d digest.Digest, want ...int) error {
	for _, w := range want {
		if resp.StatusCode == w {
			return nil
		}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxErrorBody)
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w", d, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", d, &statusError{code: resp.StatusCode, busy: resp.Header.Get(HeaderBusy)})
}

// Stat asks p for the size of d (HEAD). The error wraps ErrNotFound when p
// does not have it.
func (n *Node) Stat(ctx context.Context, p peer.ID, d digest.Digest) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(p, d), nil)
	if err != nil {
		return 0, fmt.Errorf("stat %s on %s: %w", d, p, err)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("stat %s on %s: %w", d, p, err)
	}
	resp.Body.Close()
	if err := checkStatus(resp, d, http.StatusOK); err != nil {
		return 0, fmt.Errorf("stat on %s: %w", p, err)
	}
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("stat %s on %s: no content length", d, p)
	}
	return resp.ContentLength, nil
}

// getRange requests bytes [off, off+length) of d from p. The body is
// checked to be exactly that range.
func (n *Node) getRange(ctx context.Context, p peer.ID, d digest.Digest, off, length, size int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(p, d), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+length-1, 10))
	resp, err := n.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := checkStatus(resp, d, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return nil, err
	}
	gotOff, gotLen, gotSize, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil || gotOff != off || gotLen != length || gotSize != size {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: peer sent range %q, want %s: %w",
			d, resp.Header.Get("Content-Range"), contentRange(off, length, size), errBadRange)
	}
	return resp.Body, nil
}
