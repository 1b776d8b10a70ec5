package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// crashNode is one agent process of the crash matrix across its restarts.
type crashNode struct {
	name, data string
	args       []string
	proc       *agentProcess
	serf       string
}

// crashFleet is two agents in one group sharing a file origin: "a" (the
// group's lock proxy: higher priority) and "b", which joins it.
type crashFleet struct {
	t      *testing.T
	origin string
	config string
	a, b   *crashNode
	report []string // one line per phase and invariant, logged at the end
}

func newCrashFleet(t *testing.T) *crashFleet {
	f := &crashFleet{t: t, origin: t.TempDir(), config: filepath.Join(t.TempDir(), "shoal.yaml")}
	// Short leases so a dead holder's lock frees, and a new proxy's grace
	// ends, within seconds.
	if err := os.WriteFile(f.config, []byte("locks: {ttl: 1s, max_ttl: 2s, grace: 3s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.a = &crashNode{name: "crash-a", data: t.TempDir(), args: []string{"--proxy-priority", "10"}}
	f.b = &crashNode{name: "crash-b", data: t.TempDir()}
	f.start(f.a)
	f.start(f.b)
	return f
}

// start runs n on its data dir, joining the other node if it is up, and
// waits until both list each other as alive.
func (f *crashFleet) start(n *crashNode) {
	t := f.t
	t.Helper()
	args := append([]string{"--config", f.config, "--data-dir", n.data, "--origin", "file://" + f.origin,
		"--node-name", n.name, "--drain-timeout", "5s"}, n.args...)
	for _, o := range []*crashNode{f.a, f.b} {
		if o != n && o.proc != nil && !o.dead() {
			args = append(args, "--join", o.serf)
		}
	}
	if n.serf != "" {
		// A restarted host keeps its serf address (a fixed port in
		// production): serf resolves a known name at a new address as a
		// name conflict, and the node that loses shuts serf down.
		args = append(args, "--serf-addr", n.serf)
	}
	n.proc = startProcess(t, args...)
	s, err := rollStatus(n.proc.admin)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.Members, func(m Member) bool { return m.Name == n.name })
	if i < 0 {
		t.Fatalf("%s does not list itself: %+v", n.name, s.Members)
	}
	n.serf = s.Members[i].Addr
	f.waitConverged()
}

func (n *crashNode) dead() bool {
	select {
	case <-n.proc.exited:
		return true
	default:
		return false
	}
}

// waitConverged waits until every live node sees every live node alive
// and agrees on the proxy.
func (f *crashFleet) waitConverged() {
	var live []*crashNode
	for _, n := range []*crashNode{f.a, f.b} {
		if n.proc != nil && !n.dead() {
			live = append(live, n)
		}
	}
	waitFor(f.t, "membership to converge", 60*time.Second, func() bool {
		proxy := ""
		for _, n := range live {
			s, err := rollStatus(n.proc.admin)
			if err != nil {
				return false
			}
			alive := 0
			for _, m := range s.Members {
				if m.Status == "alive" {
					alive++
				}
			}
			if alive != len(live) || s.Proxy == "" || (proxy != "" && s.Proxy != proxy) {
				return false
			}
			proxy = s.Proxy
		}
		return true
	})
}

// kill SIGKILLs n.
func (f *crashFleet) kill(n *crashNode) { n.proc.kill() }

// check records an invariant's outcome for the phase and fails the test
// if it does not hold.
func (f *crashFleet) check(phase, invariant string, err error) {
	f.t.Helper()
	status := "ok"
	if err != nil {
		status = "VIOLATED: " + err.Error()
	}
	f.report = append(f.report, fmt.Sprintf("%-13s %-58s %s", phase, invariant, status))
	if err != nil {
		f.t.Errorf("crash phase %s: %s: %v", phase, invariant, err)
	}
}

// noLeftovers checks that n's cache has no temp or upload files.
func noLeftovers(n *crashNode) error {
	for _, sub := range []string{"incomplete", "uploads"} {
		des, err := os.ReadDir(filepath.Join(n.data, "cas", sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(des) != 0 {
			return fmt.Errorf("cas/%s holds %d files", sub, len(des))
		}
	}
	return nil
}

// pullExact GETs d from n and reports whether it answered 404 (absent) or
// the exact bytes; anything else (a partial or wrong body) is an error.
func pullExact(n *crashNode, repo string, d digest.Digest, want []byte) (absent bool, err error) {
	resp, err := http.Get(n.proc.url("/v2/" + repo + "/blobs/" + d.String()))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return true, nil
	case err != nil:
		return false, fmt.Errorf("GET %s: %d after %d bytes: %w", d, resp.StatusCode, len(body), err)
	case resp.StatusCode != http.StatusOK || !bytes.Equal(body, want):
		return false, fmt.Errorf("GET %s: %d with %d bytes (want %d exact bytes)", d, resp.StatusCode, len(body), len(want))
	}
	return false, nil
}

// drained waits until n's outbox is empty and every blob in acked is in
// the object store with the right bytes.
func (f *crashFleet) drained(n *crashNode, acked map[digest.Digest][]byte) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := rollStatus(n.proc.admin)
		if err == nil && s.OutboxPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("outbox not drained after 60s: %+v %v", s.OutboxPending, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for d, b := range acked {
		got, err := os.ReadFile(filepath.Join(f.origin, "blobs", "sha256", d.Encoded()))
		if err != nil {
			return fmt.Errorf("acknowledged %s not in the object store: %w", d, err)
		}
		if !bytes.Equal(got, b) {
			return fmt.Errorf("object store copy of %s is wrong", d)
		}
	}
	return nil
}

// holdLock asks n's admin API for lock name and returns the token once
// held; the lock is held until ctx ends. An error if not held within wait.
func holdLock(ctx context.Context, n *crashNode, name string, wait time.Duration) (uint64, error) {
	tok, _, err := holdLockWatch(ctx, n, name, wait)
	return tok, err
}

// holdLockWatch is holdLock that also returns a channel which receives the
// time the agent reported the lease lost (or its response ended), if it does.
func holdLockWatch(ctx context.Context, n *crashNode, name string, wait time.Duration) (uint64, <-chan time.Time, error) {
	url := fmt.Sprintf("http://%s/v1/locks/hold?name=%s&wait=%s", n.proc.admin, name, wait)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return 0, nil, fmt.Errorf("hold %s on %s: %d %s", name, n.name, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	var token uint64
	if _, serr := fmt.Sscanf(line, "held token=%d", &token); err != nil || serr != nil {
		resp.Body.Close()
		return 0, nil, fmt.Errorf("hold %s on %s: answer %q: %v", name, n.name, line, errors.Join(err, serr))
	}
	lost := make(chan time.Time, 1)
	go func() {
		_, _ = br.ReadString('\n') // "lost", or the end of the response
		lost <- time.Now()
	}()
	go func() { <-ctx.Done(); resp.Body.Close() }()
	return token, lost, nil
}

// refusedWhileHeld tries to take name on n for up to 15 s and reports an
// error if it is granted; it returns nil once n answers 409 (held
// elsewhere). 503 answers (the owner does not yet see n's new incarnation
// as alive) are retried.
func refusedWhileHeld(ctx context.Context, n *crashNode, name string, wait time.Duration) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		hctx, cancel := context.WithCancel(ctx)
		_, err := holdLock(hctx, n, name, wait)
		cancel()
		switch {
		case err == nil:
			return fmt.Errorf("%s acquired %s while it is held elsewhere", n.name, name)
		case strings.Contains(err.Error(), ": 409 "):
			return nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no 409 within 15s; last answer: %w", last)
}

// TestCrashMatrix SIGKILLs real agent processes at each phase of their
// work (upload, commit, replication, peer download, lock held, proxy
// role), restarts them on the same data directories and checks the
// invariants: nothing acknowledged is lost, nothing partial is served,
// no temp files stay, the outbox drains, and a lock is never held twice.
// It logs a table of phase × invariant.
func TestCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash matrix: not in -short")
	}
	f := newCrashFleet(t)
	defer func() { t.Logf("crash matrix:\n%s", strings.Join(f.report, "\n")) }()
	acked := map[digest.Digest][]byte{} // every blob answered 201, by any phase
	var ackMu sync.Mutex
	ack := func(d digest.Digest, b []byte) { ackMu.Lock(); acked[d] = b; ackMu.Unlock() }

	// Phase upload: a chunked session and a monolithic upload in flight.
	{
		base := "http://" + f.b.proc.registry
		resp, err := http.Post(base+"/v2/crash/m/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		session := resp.Header.Get("Location")
		chunk, _ := randomBlob(300, 4<<20)
		req, _ := http.NewRequest(http.MethodPatch, base+session, bytes.NewReader(chunk))
		req.Header.Set("Content-Type", "application/octet-stream")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		partial, partialD := randomBlob(301, 32<<20)
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			resp, err := http.Post(fmt.Sprintf("%s/v2/crash/m/blobs/uploads/?digest=%s", base, partialD), "application/octet-stream", pr)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("upload finished: %s", resp.Status)
			}
			done <- err
		}()
		if _, err := pw.Write(partial[:20<<20]); err != nil {
			t.Fatal(err)
		}
		f.kill(f.b)
		pw.CloseWithError(io.ErrUnexpectedEOF)
		f.check("upload", "in-flight upload not acknowledged", func() error {
			if err := <-done; err == nil {
				return errors.New("an upload cut by SIGKILL reported success")
			}
			return nil
		}())
		f.start(f.b)
		f.check("upload", "no temp or upload files after restart", noLeftovers(f.b))
		absent, err := pullExact(f.b, "crash/m", partialD, partial)
		if err == nil && !absent {
			err = errors.New("a blob whose upload was cut is served")
		}
		f.check("upload", "partial upload's digest answers 404", err)
		f.check("upload", "cut session is unknown (404) after restart", func() error {
			resp, err := http.Get("http://" + f.b.proc.registry + session)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return fmt.Errorf("GET session: %d", resp.StatusCode)
			}
			return nil
		}())
	}

	// Phase commit: 12 concurrent pushes, killed after the second 201 (the
	// others are being written or committed).
	{
		base := "http://" + f.b.proc.registry
		type push struct {
			d digest.Digest
			b []byte
		}
		var pushes []push
		for i := range 12 {
			b, d := randomBlob(uint64(400+i), (i+1)*4<<20+i) // 4 to 48 MiB: they finish one after another
			pushes = append(pushes, push{d, b})
		}
		first := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		var acks atomic.Int32
		for _, p := range pushes {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v2/crash/m/blobs/uploads/?digest=%s", base, p.d), bytes.NewReader(p.b))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					ack(p.d, p.b)
					if acks.Add(1) == 2 {
						once.Do(func() { close(first) })
					}
				}
			})
		}
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			t.Fatal("2 pushes not acknowledged within 30s")
		}
		f.kill(f.b)
		wg.Wait()
		f.start(f.b)
		f.check("commit", "no temp or upload files after restart", noLeftovers(f.b))
		var errs []error
		ackedN, present := 0, 0
		for _, p := range pushes {
			ackMu.Lock()
			_, wasAcked := acked[p.d]
			ackMu.Unlock()
			absent, err := pullExact(f.b, "crash/m", p.d, p.b)
			switch {
			case err != nil:
				errs = append(errs, err)
			case wasAcked && absent:
				errs = append(errs, fmt.Errorf("acknowledged %s lost", p.d))
			}
			if wasAcked {
				ackedN++
			}
			if !absent && err == nil {
				present++
			}
		}
		f.report = append(f.report, fmt.Sprintf("%-13s (%d of 12 pushes acknowledged before the kill, %d present after restart)", "commit", ackedN, present))
		f.check("commit", "acknowledged blobs served exactly, others absent or exact", errors.Join(errs...))
	}

	// Phase replication: killed with outbox items pending.
	{
		base := "http://" + f.b.proc.registry
		pending := 0
		for i := 0; i < 8 && pending == 0; i++ {
			b, d := randomBlob(uint64(500+i), 32<<20)
			if code := pushBlob(t, base, "crash/m", b, d); code != http.StatusCreated {
				t.Fatalf("push: %d", code)
			}
			ack(d, b)
			pending = f.b.proc.status(t).OutboxPending
		}
		if pending == 0 {
			t.Fatal("could not catch the outbox with pending work")
		}
		f.kill(f.b)
		f.report = append(f.report, fmt.Sprintf("%-13s (killed with %d replication items pending)", "replication", pending))
		f.start(f.b)
		f.check("replication", "outbox drains; every acknowledged blob in the object store", f.drained(f.b, acked))
	}

	// Phase peer download: b pulls a blob that only a has (its object
	// store copy is not there yet: replication is what phase 3 tested)
	// and is killed mid-transfer.
	{
		big, bigD := randomBlob(600, 96<<20)
		if code := pushBlob(t, "http://"+f.a.proc.registry, "crash/m", big, bigD); code != http.StatusCreated {
			t.Fatalf("push to a: %d", code)
		}
		ack(bigD, big)
		resp, err := http.Get(f.b.proc.url("/v2/crash/m/blobs/" + bigD.String()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 8<<20); err != nil {
			t.Fatalf("first 8 MiB from b: %v", err)
		}
		f.kill(f.b)
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		f.check("peer-download", "the cut response is not complete", func() error {
			if err == nil {
				return errors.New("the response ended cleanly although its server was killed mid-transfer")
			}
			return nil
		}())
		f.start(f.b)
		f.check("peer-download", "no temp or upload files after restart", noLeftovers(f.b))
		// Right after a restart b's DHT may not list a yet, and the object
		// store may not have the blob yet: a 404 then is an availability
		// gap, not corruption. It must be served, exactly, within 15 s.
		restarted := time.Now()
		var absent bool
		for {
			absent, err = pullExact(f.b, "crash/m", bigD, big)
			if err != nil || !absent || time.Since(restarted) > 15*time.Second {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err == nil && absent {
			err = errors.New("404 for 15 s for a blob a peer has")
		}
		f.check("peer-download", "blob served exactly after restart (refetched)", err)
		f.report = append(f.report, fmt.Sprintf("%-13s (served %v after b was ready again)", "peer-download", time.Since(restarted).Round(time.Millisecond)))
	}

	// Phase lock held: b holds a lock and is killed; a gets it once b's
	// lease ends, with a larger fencing token.
	{
		hctx, release := context.WithCancel(t.Context())
		tokB, err := holdLock(hctx, f.b, "crash-lock", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.kill(f.b)
		actx, releaseA := context.WithCancel(t.Context())
		start := time.Now()
		tokA, err := holdLock(actx, f.a, "crash-lock", 30*time.Second)
		if err == nil && tokA <= tokB {
			err = fmt.Errorf("token %d after the dead holder's %d: fencing broken", tokA, tokB)
		}
		f.check("lock-held", "lock granted elsewhere after the holder dies, higher token", err)
		f.report = append(f.report, fmt.Sprintf("%-13s (b held token %d; a got token %d after %v)", "lock-held", tokB, tokA, time.Since(start).Round(time.Millisecond)))
		release()
		f.start(f.b)
		f.check("lock-held", "restarted holder does not think it holds the lock", func() error {
			if s := f.b.proc.status(t); len(s.HeldLocks) != 0 {
				return fmt.Errorf("b lists %+v", s.HeldLocks)
			}
			return nil
		}())
		f.check("lock-held", "lock not granted twice while a holds it", refusedWhileHeld(t.Context(), f.b, "crash-lock", 2*time.Second))
		releaseA()
	}

	// Phase proxy role: b holds a lock, a (the proxy that owns it) is
	// killed; b's lease survives the failover, and the restarted a cannot
	// take the lock while b holds it.
	{
		hctx, release := context.WithCancel(t.Context())
		defer release()
		var tokB uint64
		var lostB <-chan time.Time
		var err error
		waitFor(t, "b to take proxy-lock", 30*time.Second, func() bool {
			tokB, lostB, err = holdLockWatch(hctx, f.b, "proxy-lock", 5*time.Second)
			return err == nil
		})
		if s := f.a.proc.status(t); s.Proxy != f.a.name {
			t.Fatalf("a is not the proxy: %q", s.Proxy)
		}
		f.kill(f.a)
		f.start(f.a)
		// a asks for the lock (waiting past a new owner's grace period).
		// Safety: it may get it only after b's lease was lost, with a
		// larger token; b must not still list it.
		actx, releaseA := context.WithCancel(t.Context())
		tokA, aErr := holdLock(actx, f.a, "proxy-lock", 8*time.Second)
		granted := time.Now()
		var lostAt time.Time
		select {
		case lostAt = <-lostB:
		default:
		}
		holds := f.b.proc.status(t).HeldLocks
		bHolds := slices.ContainsFunc(holds, func(h HeldLock) bool { return h.Name == "proxy-lock" })
		switch {
		case aErr == nil:
			f.check("proxy", "lock not granted twice across the proxy's crash", func() error {
				switch {
				case bHolds:
					return fmt.Errorf("a got token %d while b still lists %+v", tokA, holds)
				case lostAt.IsZero() || lostAt.After(granted):
					return fmt.Errorf("a got token %d before b's lease (token %d) was reported lost", tokA, tokB)
				case tokA <= tokB:
					return fmt.Errorf("a's token %d not above b's %d", tokA, tokB)
				}
				return nil
			}())
			// Liveness, not safety: the design has holders re-assert their
			// leases to a new owner; here the lease did not survive.
			f.report = append(f.report, fmt.Sprintf("%-13s NOTE: b's lease did not survive the proxy's crash and restart (lost %v before a's grant); a got token %d > %d",
				"proxy", granted.Sub(lostAt).Round(time.Millisecond), tokA, tokB))
		case strings.Contains(aErr.Error(), ": 409 "):
			f.check("proxy", "lock not granted twice across the proxy's crash", nil)
			f.check("proxy", "holder keeps its lease", func() error {
				if !bHolds {
					return fmt.Errorf("b lists %+v", holds)
				}
				return nil
			}())
			release()
			_, err = holdLock(actx, f.a, "proxy-lock", 10*time.Second)
			f.check("proxy", "lock granted once the holder releases", err)
		default:
			f.check("proxy", "lock answers after the proxy's crash", aErr)
		}
		releaseA()
		f.check("proxy", "outbox of the restarted proxy drains", f.drained(f.a, nil))
	}

	// Every acknowledged blob, from every phase, is served by both agents.
	var errs []error
	for d, b := range acked {
		for _, n := range []*crashNode{f.a, f.b} {
			if absent, err := pullExact(n, "crash/m", d, b); err != nil || absent {
				errs = append(errs, fmt.Errorf("%s on %s: absent %v, %v", d, n.name, absent, err))
			}
		}
	}
	f.check("end", fmt.Sprintf("all %d acknowledged blobs served exactly by both agents", len(acked)), errors.Join(errs...))
}
