package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// listen opens a datagram socket standing in for systemd's notify socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive reads one datagram, failing the test after a generous deadline.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySendsExactDatagrams(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	n := New(path)
	if !n.Enabled() {
		t.Fatal("Enabled() = false for a socket path")
	}
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", n.Ready, "READY=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"status", func() error { return n.Status("serving 3 peers") }, "STATUS=serving 3 peers"},
		{"status newline", func() error { return n.Status("a\nREADY=1") }, "STATUS=a READY=1"},
		{"extend timeout", func() error { return n.ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
		{"raw", func() error { return n.Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	}
	// Sequential on purpose: the cases share one socket.
	for _, tt := range tests {
		if err := tt.send(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := receive(t, conn); got != tt.want {
			t.Errorf("%s: datagram %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("@shoal-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn := listen(t, name)
	n := New(name)
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("datagram %q, want READY=1", got)
	}
	// The abstract name must not have created a file named "@…".
	if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s: %v, want not exist", name, err)
	}
}

func TestNilNotifierIsNoOp(t *testing.T) {
	t.Parallel()
	n := New("")
	if n != nil || n.Enabled() {
		t.Fatalf("New(\"\") = %v, want nil and disabled", n)
	}
	for _, err := range []error{n.Ready(), n.Stopping(), n.Watchdog(), n.Status("x"), n.Notify("X=1"), n.ExtendTimeout(time.Second)} {
		if err != nil {
			t.Errorf("nil notifier returned %v", err)
		}
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		socket string
		want   error // nil: any non-nil error
	}{
		{"vsock", "vsock:2:1234", ErrUnsupportedSocket},
		{"relative path", "run/notify", ErrUnsupportedSocket},
		{"no listener", filepath.Join(t.TempDir(), "absent"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := New(tt.socket).Ready()
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Ready() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) { // not parallel: sets the environment
	t.Setenv("NOTIFY_SOCKET", "")
	if FromEnv() != nil {
		t.Error("FromEnv with empty NOTIFY_SOCKET is not nil")
	}
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if err := FromEnv().Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "STOPPING=1" {
		t.Errorf("datagram %q, want STOPPING=1", got)
	}
}
