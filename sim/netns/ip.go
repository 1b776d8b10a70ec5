package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cmdTimeout bounds one `ip` or `tc` invocation.
const cmdTimeout = 10 * time.Second

// tools are the paths of the programs the network runs.
type tools struct {
	ipPath string
	tcPath string // "" when not needed and not found
}

// findTools checks that this process can create namespaces: root, `ip`, and
// `tc` when links are shaped.
func findTools(needTC bool) (tools, error) {
	if os.Geteuid() != 0 {
		return tools{}, fmt.Errorf("%w: needs root (euid %d)", ErrUnavailable, os.Geteuid())
	}
	var t tools
	var err error
	if t.ipPath, err = exec.LookPath("ip"); err != nil {
		return tools{}, fmt.Errorf("%w: iproute2 `ip` not found: %w", ErrUnavailable, err)
	}
	if t.tcPath, err = exec.LookPath("tc"); err != nil {
		if needTC {
			return tools{}, fmt.Errorf("%w: iproute2 `tc` not found (needed for bandwidth): %w", ErrUnavailable, err)
		}
		t.tcPath = ""
	}
	return t, nil
}

// run runs one program with a timeout and returns its standard output.
func run(ctx context.Context, path string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", path, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ip runs `ip args…`.
func (t tools) ip(ctx context.Context, args ...string) error {
	_, err := run(ctx, t.ipPath, args...)
	return err
}

// ipAll runs `ip` once per step, stopping at the first failure.
func (t tools) ipAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := t.ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// linkExists reports whether the root namespace has a link named name.
func (t tools) linkExists(ctx context.Context, name string) bool {
	return t.ip(ctx, "link", "show", "dev", name) == nil
}

// shape puts a token-bucket filter capping egress at bps bit/s on dev in
// namespace ns, or removes the root qdisc when bps is 0.
//
// The bucket holds 10 ms of traffic (at least 64 KiB, one GSO super-packet),
// so bursts above the rate are short; the queue holds 20 ms more, so TCP
// sees a modest buffer rather than drops at every burst.
func (t tools) shape(ctx context.Context, ns, dev string, bps int64) error {
	if t.tcPath == "" {
		if bps == 0 {
			return nil
		}
		return errors.New("iproute2 `tc` not found")
	}
	if bps == 0 {
		_, err := run(ctx, t.tcPath, "-n", ns, "qdisc", "del", "dev", dev, "root")
		if err != nil && (strings.Contains(err.Error(), "handle of zero") || strings.Contains(err.Error(), "No such file or directory")) {
			return nil // nothing to remove: the default qdisc is in place
		}
		return err
	}
	burst := max(bps/8/100, 64<<10)
	_, err := run(ctx, t.tcPath, "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(bps, 10)+"bit",
		"burst", strconv.FormatInt(burst, 10),
		"latency", "20ms")
	return err
}

// freeSubnet picks a random 10.213.X.0/24 that no route of the root
// namespace (any table) overlaps.
func freeSubnet(ctx context.Context, t tools) (netip.Prefix, error) {
	const attempts = 64
	for range attempts {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(rand.IntN(256)), 0}), 24)
		n, err := routesOverlapping(ctx, t, p, "")
		if err != nil {
			return netip.Prefix{}, err
		}
		if n == 0 {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no 10.213.X.0/24 free of routes after %d tries", attempts)
}

// routesOverlapping counts the root namespace's IPv4 routes, in every table
// and through any device but exceptDev, whose destination overlaps p
// (default routes do not count).
func routesOverlapping(ctx context.Context, t tools, p netip.Prefix, exceptDev string) (int, error) {
	out, err := run(ctx, t.ipPath, "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return 0, err
	}
	var routes []struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return 0, fmt.Errorf("parse `ip -j route`: %w", err)
	}
	n := 0
	for _, r := range routes {
		if exceptDev != "" && r.Dev == exceptDev {
			continue
		}
		dst, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			a, aerr := netip.ParseAddr(r.Dst)
			if aerr != nil {
				continue // "default" and the like
			}
			dst = netip.PrefixFrom(a, a.BitLen())
		}
		if dst.Overlaps(p) {
			n++
		}
	}
	return n, nil
}

// removeNamespace kills every process in namespace ns, waits until none is
// left and deletes the namespace.
func removeNamespace(ctx context.Context, t tools, ns string) error {
	err := waitFor(ctx, 5*time.Second, func() (bool, error) {
		out, err := run(ctx, t.ipPath, "netns", "pids", ns)
		if err != nil {
			return false, err
		}
		pids := strings.Fields(string(out))
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil {
				// ESRCH: it exited meanwhile.
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					return false, fmt.Errorf("kill %d in %s: %w", pid, ns, err)
				}
			}
		}
		return len(pids) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("empty namespace %s: %w", ns, err)
	}
	return t.ip(ctx, "netns", "del", ns)
}

// removeStale deletes namespaces named <prefix>-<pid>-<id>-… whose
// creating process no longer exists (a test binary that was killed).
func removeStale(ctx context.Context, t tools, prefix string) error {
	out, err := run(ctx, t.ipPath, "netns", "list")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-([0-9]+)-[0-9a-f]{8}-(hub|h[0-9]+)$`)
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line) // "name (id: 3)"
		if len(fields) == 0 {
			continue
		}
		m := re.FindStringSubmatch(fields[0])
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processExists(pid) {
			continue
		}
		if err := removeNamespace(ctx, t, fields[0]); err != nil {
			errs = append(errs, fmt.Errorf("stale namespace: %w", err))
		}
	}
	return errors.Join(errs...)
}

// processExists reports whether a process with this PID is alive.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
