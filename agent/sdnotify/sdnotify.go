// Package sdnotify is a minimal client for systemd's service notification
// protocol, written from sd_notify(3) and sd_watchdog_enabled(3):
//
//   - systemd passes the path of an AF_UNIX datagram socket in
//     $NOTIFY_SOCKET. A path starting with "@" names a socket in the Linux
//     abstract namespace (the "@" stands for the leading NUL byte; Go's net
//     package makes that translation).
//   - A notification is one datagram of newline-separated VAR=VALUE
//     assignments: READY=1, STOPPING=1, WATCHDOG=1, STATUS=<text>,
//     EXTEND_TIMEOUT_USEC=<µs>, …
//   - With WatchdogSec= set, systemd passes $WATCHDOG_USEC (the timeout in
//     microseconds) and $WATCHDOG_PID (the process it is meant for); a
//     service should send WATCHDOG=1 about every half of the timeout.
//
// With NotifyAccess=main, systemd accepts datagrams only from the main
// process, which is the agent itself: nothing here forks.
//
// Without $NOTIFY_SOCKET (not started by systemd, or Type= is not notify),
// New returns a nil *Notifier whose methods do nothing, so callers never
// branch on whether they run under systemd.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupportedSocket is returned for $NOTIFY_SOCKET values this client
// cannot reach, such as systemd's "vsock:" addresses for virtual machines.
var ErrUnsupportedSocket = errors.New("sdnotify: unsupported notify socket address")

// Notifier sends state notifications to the service manager. The zero
// value is not usable; a nil *Notifier is, and ignores every notification.
type Notifier struct {
	addr *net.UnixAddr
	err  error // set when the address is unusable; returned by Notify
}

// New returns a Notifier for the socket named by socketPath (the value of
// $NOTIFY_SOCKET), or nil when socketPath is empty.
func New(socketPath string) *Notifier {
	if socketPath == "" {
		return nil
	}
	n := &Notifier{addr: &net.UnixAddr{Name: socketPath, Net: "unixgram"}}
	// sd_notify(3): the address is an absolute path or starts with "@"
	// (abstract namespace). Anything else (e.g. "vsock:CID:PORT") is
	// reported on first use rather than silently dropped.
	if !strings.HasPrefix(socketPath, "/") && !strings.HasPrefix(socketPath, "@") {
		n.err = fmt.Errorf("%w: %q", ErrUnsupportedSocket, socketPath)
	}
	return n
}

// FromEnv is New(os.Getenv("NOTIFY_SOCKET")).
func FromEnv() *Notifier {
	return New(os.Getenv("NOTIFY_SOCKET"))
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool {
	return n != nil
}

// Notify sends state, one or more newline-separated VAR=VALUE assignments,
// as a single datagram. It is a no-op on a nil Notifier.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	if n.err != nil {
		return n.err
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready tells systemd that start-up is finished (READY=1): with Type=notify,
// units ordered after this one start only then.
func (n *Notifier) Ready() error {
	return n.Notify("READY=1")
}

// Stopping tells systemd that the service is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error {
	return n.Notify("STOPPING=1")
}

// Watchdog is the keep-alive ping (WATCHDOG=1).
func (n *Notifier) Watchdog() error {
	return n.Notify("WATCHDOG=1")
}

// Status sets the free-form status line shown by `systemctl status`
// (STATUS=msg). Newlines would start new assignments, so they become
// spaces.
func (n *Notifier) Status(msg string) error {
	return n.Notify("STATUS=" + strings.ReplaceAll(msg, "\n", " "))
}

// ExtendTimeout asks systemd for d more time to finish starting or stopping
// (EXTEND_TIMEOUT_USEC), e.g. while draining transfers after SIGTERM takes
// longer than TimeoutStopSec. It must be repeated before d runs out.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}
