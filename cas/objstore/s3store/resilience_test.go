package s3store_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/s3store"
	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
)

// TestOutage kills the gateway under a store: calls fail with
// ErrUnavailable at once, the breaker opens so that each call returns in
// well under 50ms, and after a restart calls succeed again once the
// cool-down has passed.
func TestOutage(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	opts := testOptions(t)
	opts.Attempts = 3
	opts.BreakerThreshold = 3
	opts.BreakerCooldown = 300 * time.Millisecond
	s := newStore(t, g, "", opts)
	ctx := t.Context()
	if err := s.Put(ctx, "k", strings.NewReader("value"), 5); err != nil {
		t.Fatal(err)
	}

	g.Kill()
	start := time.Now()
	_, err := s.Stat(ctx, "k")
	first := time.Since(start)
	if !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Stat with the server down = %v, want ErrUnavailable", err)
	}
	t.Logf("first call with the server down: %v (%v)", first, err)
	if first > time.Second {
		t.Errorf("first call took %v, want well under a second (retries are bounded)", first)
	}
	if ok, lastErr, at := s.Health(); ok || lastErr == nil || time.Since(at) > time.Second {
		t.Errorf("Health = %v, %v, %v; want not ok with a recent error", ok, lastErr, at)
	}

	// The breaker is open now: every operation fails fast.
	var slowest time.Duration
	calls := map[string]func() error{
		"stat":   func() error { _, err := s.Stat(ctx, "k"); return err },
		"get":    func() error { _, err := s.Get(ctx, "k", 0, -1); return err },
		"put":    func() error { return s.Put(ctx, "k2", strings.NewReader("v"), 1) },
		"delete": func() error { return s.Delete(ctx, "k") },
		"list": func() error {
			for _, err := range s.List(ctx, "") {
				return err
			}
			return nil
		},
	}
	for range 10 {
		for name, call := range calls {
			start := time.Now()
			err := call()
			d := time.Since(start)
			slowest = max(slowest, d)
			if !errors.Is(err, objstore.ErrUnavailable) {
				t.Errorf("%s with the breaker open = %v, want ErrUnavailable", name, err)
			}
			if d >= 50*time.Millisecond {
				t.Errorf("%s with the breaker open took %v, want well under 50ms", name, d)
			}
		}
	}
	t.Logf("slowest of 50 calls with the breaker open: %v", slowest)

	g.Start(t) // same address, same data
	restarted := time.Now()
	deadline := restarted.Add(10 * time.Second)
	for {
		rc, err := s.Get(ctx, "k", 0, -1)
		if err == nil {
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(b) != "value" {
				t.Fatalf("Get after recovery = %q, %v; want value", b, err)
			}
			break
		}
		if !errors.Is(err, objstore.ErrUnavailable) {
			t.Fatalf("Get after restart = %v, want success or ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover within 10s of the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("recovered %v after the restart (cool-down %v)", time.Since(restarted), opts.BreakerCooldown)
	if ok, _, _ := s.Health(); !ok {
		t.Error("Health not ok after recovery")
	}
	if err := s.Put(ctx, "k2", strings.NewReader("v"), 1); err != nil {
		t.Errorf("Put after recovery: %v", err)
	}
}

// TestHungServer stops the gateway process (it keeps its socket but never
// answers): calls end with ErrUnavailable after their timeout, and a Get
// whose body stalls fails instead of hanging.
func TestHungServer(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	opts := testOptions(t)
	opts.Timeout = 300 * time.Millisecond
	opts.Attempts = 2
	opts.BreakerThreshold = 2
	opts.BreakerCooldown = time.Hour
	s := newStore(t, g, "", opts)
	ctx := t.Context()
	data := bytes.Repeat([]byte("stall "), 8<<20/6)
	if err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}

	g.Signal(t, syscall.SIGSTOP)
	defer g.Signal(t, syscall.SIGCONT)
	start := time.Now()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("reading a stalled body = %v, want ErrUnavailable", err)
	}
	t.Logf("stalled body failed after %v", time.Since(start))

	start = time.Now()
	_, err = s.Stat(ctx, "big")
	d := time.Since(start)
	if !errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("Stat on a hung server = %v, want ErrUnavailable", err)
	}
	t.Logf("Stat on a hung server failed after %v: %v", d, err)
	if d > 2*time.Second {
		t.Errorf("Stat on a hung server took %v; want about 2 attempts of 300ms", d)
	}
	start = time.Now()
	if _, err := s.Stat(ctx, "big"); !errors.Is(err, objstore.ErrUnavailable) || time.Since(start) > 50*time.Millisecond {
		t.Errorf("Stat with the breaker open = %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
}

// TestErrorMapping checks the error mapping at the
// edges: a missing key is ErrNotFound, not ErrUnavailable, and a refused
// request (wrong keys) is neither.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	s := newStore(t, g, "", testOptions(t))
	ctx := t.Context()
	_, err := s.Stat(ctx, "missing")
	if !errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("Stat(missing) = %v, want only ErrNotFound", err)
	}
	if ok, _, _ := s.Health(); !ok {
		t.Error("a 404 made the store unhealthy")
	}
	if _, err := s.Stat(ctx, "a/../b"); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Errorf("Stat(a/../b) = %v, want ErrInvalidKey", err)
	}

	bad := testOptions(t)
	bad.CredentialsFile = writeFile(t, "[default]\naws_access_key_id = "+s3test.AccessKey+"\naws_secret_access_key = not-the-secret\n")
	bad.Profile = "default"
	if _, err := s3store.New(ctx, g.URL(g.Bucket(t), ""), bad); err == nil ||
		errors.Is(err, objstore.ErrUnavailable) || errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("New with a wrong secret = %v, want a plain error", err)
	} else {
		checkNoSecrets(t, err.Error())
	}
}
