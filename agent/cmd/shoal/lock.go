package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const lockUsage = `Usage:
  shoal lock run NAME [--limit N] [--ttl D] [--wait D] -- CMD [ARGS...]

Runs CMD while holding the fleet lock NAME (a counting semaphore with
--limit N), through the local agent. The lock is released when CMD exits or
this command is killed; if the lease is lost, CMD gets SIGTERM. The exit
code is CMD's.
`

// errLockLost is returned when the agent reports the lease lost.
var errLockLost = errors.New("lock lost while the command ran")

func runLock(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprint(stderr, lockUsage)
		return 2, errUsage
	}
	fs := flag.NewFlagSet("shoal lock run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, lockUsage, "\nFlags:\n"); fs.PrintDefaults() }
	limit := fs.Int("limit", 1, "how many holders at once (a counting semaphore)")
	ttl := fs.Duration("ttl", 0, "lease TTL, renewed while CMD runs (0: the agent's default)")
	wait := fs.Duration("wait", time.Hour, "how long to wait for the lock")
	addr := fs.String("admin-addr", envOr("SHOAL_ADMIN_ADDR", "127.0.0.1:5001"), "the local agent's admin address")
	rest := args[1:]
	if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
		fmt.Fprint(stderr, "shoal lock run: the lock NAME comes first\n\n", lockUsage)
		return 2, errUsage
	}
	name := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return 2, flagErr(err)
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		fmt.Fprint(stderr, "shoal lock run: no command given (put it after --)\n\n", lockUsage)
		return 2, errUsage
	}

	q := url.Values{"name": {name}, "limit": {fmt.Sprint(*limit)}, "wait": {wait.String()}}
	if *ttl > 0 {
		q.Set("ttl", ttl.String())
	}
	holdCtx, release := context.WithCancel(context.WithoutCancel(ctx))
	defer release()
	req, err := http.NewRequestWithContext(holdCtx, http.MethodPost, "http://"+*addr+"/v1/locks/hold?"+q.Encode(), nil)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stderr, "shoal: waiting for lock %s (limit %d)...\n", name, *limit)
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		answered <- answer{resp, err}
	}()
	var resp *http.Response
	select {
	case a := <-answered:
		if a.err != nil {
			return 1, fmt.Errorf("cannot reach the agent's admin API at %s (is `shoal agent` running?): %w", *addr, a.err)
		}
		resp = a.resp
	case <-ctx.Done():
		release()
		return 130, errors.New("interrupted while waiting for the lock")
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(body, 4096))
		return 1, fmt.Errorf("lock %s: %s: %s", name, resp.Status, strings.TrimSpace(string(msg)))
	}
	line, err := body.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "held ") {
		return 1, fmt.Errorf("lock %s: unexpected answer %q: %v", name, line, err)
	}
	fmt.Fprintf(stderr, "shoal: holding lock %s (%s)\n", name, strings.TrimSpace(strings.TrimPrefix(line, "held ")))

	cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return 127, fmt.Errorf("start %s: %w", cmdArgs[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The hold ends with "lost" (the lease is gone: stop the command),
	// "draining" (the agent is stopping, e.g. restarted by the command; the
	// lease lives one TTL past its exit: let the command finish), or EOF
	// (the agent died: treat the lease as lost).
	lost := make(chan struct{})
	go func() {
		for {
			line, err := body.ReadString('\n')
			if strings.HasPrefix(line, "draining") {
				fmt.Fprintf(stderr, "shoal: the agent is stopping; lock %s stays held until its lease expires (%s)\n",
					name, strings.TrimSpace(strings.TrimPrefix(line, "draining")))
				return
			}
			if err != nil || strings.HasPrefix(line, "lost") {
				close(lost)
				return
			}
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var lockErr error
	for {
		select {
		case err := <-exited:
			return exitCode(err), lockErr
		case <-lost:
			lockErr = errLockLost
			cmd.Process.Signal(syscall.SIGTERM)
			lost = nil
		case s := <-sigs:
			cmd.Process.Signal(s)
		}
	}
}

// exitCode is the command's exit status (128+signal when it was killed).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
