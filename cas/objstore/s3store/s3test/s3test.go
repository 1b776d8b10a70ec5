// Package s3test runs a real S3-compatible server (versitygw, built into
// the repository's .tools/bin by .ci/tools.sh) on 127.0.0.1 for tests.
package s3test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The gateway's root account, which tests use as their credentials.
const (
	AccessKey = "shoal-test-access"
	SecretKey = "shoal-test-secret-4c1f9a"
)

// Gateway is a versitygw process serving the buckets under root (one
// directory each) on 127.0.0.1.
type Gateway struct {
	bin, root, logPath string
	addr               string // host:port, fixed after the first start
	cmd                *exec.Cmd
	exited             chan struct{}
	buckets            atomic.Int64
}

// findGateway returns the versitygw binary from PATH or the repository's
// .tools/bin (found by walking up to go.mod). Without one the test skips,
// unless CI is set.
func findGateway(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for range 8 {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".tools", "bin", "versitygw")
				if _, err := os.Stat(p); err == nil {
					return p
				}
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	msg := "versitygw not found on PATH or in .tools/bin; run .ci/tools.sh to build it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start starts a gateway on a port the kernel picks and stops it when the
// test ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{
		bin:     findGateway(t),
		root:    filepath.Join(dir, "root"),
		logPath: filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(g.root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Kill)
	g.Start(t)
	return g
}

// Start runs the gateway: on port 0 the first time, reading back the port
// the kernel chose, and on that same address after a Kill.
func (g *Gateway) Start(t testing.TB) {
	t.Helper()
	listen := g.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(g.bin, "--port", listen, "posix", g.root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	g.cmd, g.exited = cmd, exited
	deadline := time.Now().Add(15 * time.Second)
	for g.addr == "" {
		if addr, ok := listeningAddr(cmd.Process.Pid); ok {
			g.addr = addr
			break
		}
		g.checkAlive(t, deadline)
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + g.addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		g.checkAlive(t, deadline)
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAlive fails the test if the gateway exited or the deadline passed.
func (g *Gateway) checkAlive(t testing.TB, deadline time.Time) {
	t.Helper()
	select {
	case <-g.exited:
		log, _ := os.ReadFile(g.logPath)
		t.Fatalf("versitygw exited during start:\n%s", log)
	default:
	}
	if time.Now().After(deadline) {
		log, _ := os.ReadFile(g.logPath)
		t.Fatalf("versitygw did not answer in time:\n%s", log)
	}
}

// Kill ends the gateway abruptly, as a crash would, and waits for it.
func (g *Gateway) Kill() {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
	g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
}

// Signal sends sig to the running gateway.
func (g *Gateway) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Bucket creates a bucket (a directory under the root) and returns its name.
func (g *Gateway) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("shoal-%d", g.buckets.Add(1))
	if err := os.Mkdir(filepath.Join(g.root, name), 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

// URL returns the store URL for bucket/prefix on this gateway.
func (g *Gateway) URL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + g.addr + "&tls=false"
}

// Addr is the gateway's host:port.
func (g *Gateway) Addr() string { return g.addr }

// Root is the directory under which each bucket is a directory.
func (g *Gateway) Root() string { return g.root }

// Env returns the AWS_* variables that authenticate as the root account.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// listeningAddr finds the TCP socket process pid listens on, by matching
// the socket inodes among its open files against /proc/<pid>/net/tcp.
func listeningAddr(pid int) (string, bool) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return "", false
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		const listen = "0A"
		if len(fields) < 10 || fields[3] != listen || !inodes[fields[9]] {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(fields[1], ":")
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil || hexIP != "0100007F" { // 127.0.0.1, little-endian
			continue
		}
		return net.JoinHostPort("127.0.0.1", strconv.FormatUint(port, 10)), true
	}
	return "", false
}
