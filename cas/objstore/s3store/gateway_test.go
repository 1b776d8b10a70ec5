package s3store_test

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
	testAccessKey = "shoal-test-access"
	testSecretKey = "shoal-test-secret-4c1f9a"
)

// gateway is a versitygw process serving the buckets under root (one
// directory each) on 127.0.0.1.
type gateway struct {
	bin, root, logPath string
	addr               string // host:port, fixed after the first start
	cmd                *exec.Cmd
	exited             chan struct{}
	buckets            atomic.Int64
}

// findGateway returns the versitygw binary from PATH or the repository's
// .tools/bin. Without one the test skips, unless CI is set.
func findGateway(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "..", ".tools", "bin", "versitygw"))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	msg := "versitygw not found on PATH or in .tools/bin; run .ci/tools.sh to build it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startGateway starts a gateway on a port the kernel picks and stops it
// when the test ends.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		bin:     findGateway(t),
		root:    filepath.Join(dir, "root"),
		logPath: filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(g.root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.kill)
	g.start(t)
	return g
}

// start runs the gateway: on port 0 the first time, reading back the port
// the kernel chose, and on that same address after a kill.
func (g *gateway) start(t *testing.T) {
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
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+testAccessKey, "ROOT_SECRET_KEY="+testSecretKey)
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
func (g *gateway) checkAlive(t *testing.T, deadline time.Time) {
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

// kill ends the gateway abruptly, as a crash would, and waits for it.
func (g *gateway) kill() {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
	g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
}

// signal sends sig to the running gateway.
func (g *gateway) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// bucket creates a bucket (a directory under the root) and returns its name.
func (g *gateway) bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("shoal-%d", g.buckets.Add(1))
	if err := os.Mkdir(filepath.Join(g.root, name), 0o755); err != nil {
		t.Fatal(err)
	}
	return name
}

// url returns the store URL for bucket/prefix on this gateway.
func (g *gateway) url(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + g.addr + "&tls=false"
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
