package sdnotify

import (
	"context"
	"os"
	"strconv"
	"time"
)

// WatchdogInterval returns how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends. ok is false when the
// watchdog is off: $WATCHDOG_USEC is unset, zero or malformed, or
// $WATCHDOG_PID names another process (the variables were inherited).
func WatchdogInterval() (interval time.Duration, ok bool) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

// watchdogInterval is WatchdogInterval with its inputs made explicit.
func watchdogInterval(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return 0, false
	}
	timeout := time.Duration(us) * time.Microsecond
	if timeout/time.Microsecond != time.Duration(us) { // overflow: a timeout of centuries
		return 0, false
	}
	return timeout / 2, true
}

// RunWatchdog pings n every WatchdogInterval while healthy() reports true,
// and returns nil when ctx is done. It returns at once when the watchdog is
// off or n is nil. An unhealthy agent stops pinging, so systemd restarts it
// once WatchdogSec passes without a ping (with Restart=on-failure). Send
// errors are not fatal: a missed ping is what the watchdog is for.
func RunWatchdog(ctx context.Context, n *Notifier, healthy func() bool) error {
	interval, ok := WatchdogInterval()
	if !ok || n == nil {
		return nil
	}
	runWatchdog(ctx, interval, healthy, n.Watchdog)
	return nil
}

// runWatchdog calls ping now and then every interval while healthy()
// holds, until ctx is done.
func runWatchdog(ctx context.Context, interval time.Duration, healthy func() bool, ping func() error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if healthy() {
			_ = ping() // a lost ping is the watchdog's business, not ours
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
