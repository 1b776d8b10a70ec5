package sdnotify

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestWatchdogIntervalParsing(t *testing.T) {
	t.Parallel()
	const self = 4242
	tests := []struct {
		name   string
		usec   string
		pid    string
		want   time.Duration
		wantOK bool
	}{
		{"unset", "", "", 0, false},
		{"30s no pid", "30000000", "", 15 * time.Second, true},
		{"30s our pid", "30000000", "4242", 15 * time.Second, true},
		{"other pid", "30000000", "1", 0, false},
		{"bad pid", "30000000", "x", 0, false},
		{"zero", "0", "4242", 0, false},
		{"negative", "-5", "", 0, false},
		{"garbage", "30s", "", 0, false},
		{"odd microseconds", "3", "", 1500 * time.Nanosecond, true},
		{"overflow", "18446744073709551615", "", 0, false},
		{"one day", "86400000000", "", 12 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := watchdogInterval(tt.usec, tt.pid, self)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, %v", tt.usec, tt.pid, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRunWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var healthy atomic.Bool
		var pings atomic.Int64
		healthy.Store(true)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			runWatchdog(ctx, 10*time.Second, healthy.Load, func() error { pings.Add(1); return nil })
		}()
		step := func(d time.Duration, want int64) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := pings.Load(); got != want {
				t.Fatalf("after %v: %d pings, want %d", d, got, want)
			}
		}
		step(time.Second, 1)    // t=1s: the immediate ping
		step(20*time.Second, 3) // t=21s: pings at 10s and 20s
		healthy.Store(false)
		step(40*time.Second, 3) // t=61s: ticks at 30..60s skipped
		healthy.Store(true)
		step(10*time.Second, 4) // t=71s: tick at 70s pings again
		cancel()
		<-done
	})
}

func TestRunWatchdogOverSocket(t *testing.T) { // not parallel: sets the environment
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	t.Setenv("WATCHDOG_USEC", "40000") // 20ms pings
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- RunWatchdog(ctx, New(path), func() bool { return true }) }()
	for range 3 {
		if got := receive(t, conn); got != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", got)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("RunWatchdog = %v, want nil", err)
	}
}

func TestRunWatchdogOff(t *testing.T) { // not parallel: sets the environment
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan error, 1)
	go func() { done <- RunWatchdog(t.Context(), New("/nonexistent"), func() bool { return true }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunWatchdog = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunWatchdog with the watchdog off did not return")
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	if err := RunWatchdog(t.Context(), nil, func() bool { return true }); err != nil {
		t.Errorf("RunWatchdog(nil notifier) = %v", err)
	}
}
