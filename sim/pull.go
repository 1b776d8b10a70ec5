package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// pullResult is one host's pull of one image.
type pullResult struct {
	Node    string
	Image   string
	Bytes   int64 // simulated bytes received
	Took    time.Duration
	Err     error
	Corrupt bool
}

// pullLayers is how many blobs a client fetches at once (containerd's default).
const pullLayers = 3

// retryMax caps the pause between a client's attempts.
const retryMax = 4 * time.Second

// pull fetches im through n's registry as a patient client would (kubelet
// retries a failed pull): manifest by tag, then config and layers, each
// checked against its digest; a failed step is retried with backoff, on
// the host's current agent (it may have restarted), until ctx ends. A
// complete response with wrong bytes is corruption and ends the pull.
func (f *fleet) pull(ctx context.Context, n *node, im *GenImage) (res pullResult) {
	res = pullResult{Node: n.spec.Name, Image: im.Name}
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	var mu sync.Mutex
	retry := func(what string, step func(base string) (int64, error)) error {
		pause := f.dilated(250 * time.Millisecond) // the client's clock is the simulated one
		var last error
		for {
			if a, ok := n.running(); ok {
				got, err := step("http://" + a.RegistryAddr() + "/v2/" + im.Repo)
				mu.Lock()
				res.Bytes += got
				mu.Unlock()
				var bad *corruptError
				if err == nil || errors.As(err, &bad) {
					return err
				}
				last = err
			} else {
				last = errors.New("host is down")
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w (gave up: %v)", what, last, ctx.Err())
			case <-time.After(pause):
			}
			pause = min(2*pause, f.dilated(retryMax))
		}
	}
	err := retry("manifest", func(base string) (int64, error) {
		mb, err := f.get(ctx, base+"/manifests/"+im.Tag, im.Manifest.MediaType)
		if err != nil {
			return 0, err
		}
		if !bytes.Equal(mb, im.Manifest.Data) {
			return int64(len(mb)), &corruptError{want: im.Manifest.Digest, got: digest.FromBytes(mb)}
		}
		return int64(len(mb)), nil
	})
	if err == nil {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(pullLayers)
		for _, b := range append([]Blob{im.Config}, im.Layers...) {
			g.Go(func() error {
				return retry("blob "+b.Digest.Encoded()[:12], func(base string) (int64, error) {
					return f.fetchBlob(gctx, base+"/blobs/"+b.Digest.String(), b)
				})
			})
		}
		err = g.Wait()
	}
	var bad *corruptError
	res.Corrupt = errors.As(err, &bad)
	res.Err = err
	return res
}

// corruptError is a complete response whose bytes are not the blob.
type corruptError struct{ want, got digest.Digest }

func (e *corruptError) Error() string {
	return fmt.Sprintf("CORRUPT: complete response with digest %s, want %s", e.got, e.want)
}

// fetchBlob reads one blob and checks it. A response cut short is an
// ordinary error (the client retries); a complete response with the wrong
// bytes is corruption.
func (f *fleet) fetchBlob(ctx context.Context, url string, b Blob) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, err
	}
	if n != int64(len(b.Data)) {
		return n, fmt.Errorf("short body: %d of %d bytes", n, len(b.Data))
	}
	if got := digest.NewDigest(digest.SHA256, h); got != b.Digest {
		return n, &corruptError{want: b.Digest, got: got}
	}
	return n, nil
}

func (f *fleet) get(ctx context.Context, url, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// push uploads im through n's registry: blobs (monolithic), then the
// manifest under its tag.
func (f *fleet) push(ctx context.Context, n *node, im *GenImage) error {
	a, ok := n.running()
	if !ok {
		return errors.New("host is down")
	}
	base := "http://" + a.RegistryAddr() + "/v2/" + im.Repo
	for _, b := range append([]Blob{im.Config}, im.Layers...) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/blobs/uploads/?digest="+b.Digest.String(), bytes.NewReader(b.Data))
		req.Header.Set("Content-Type", "application/octet-stream")
		if err := f.expect(req, http.StatusCreated); err != nil {
			return fmt.Errorf("push blob %s: %w", b.Digest.Encoded()[:12], err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/manifests/"+im.Tag, bytes.NewReader(im.Manifest.Data))
	req.Header.Set("Content-Type", im.Manifest.MediaType)
	if err := f.expect(req, http.StatusCreated); err != nil {
		return fmt.Errorf("push manifest: %w", err)
	}
	return nil
}

func (f *fleet) expect(req *http.Request, code int) error {
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != code {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
