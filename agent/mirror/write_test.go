package mirror

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func hostsPath(root, ns string) string {
	return filepath.Join(root, CertsDir, ns, "hosts.toml")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteContainerdCreatesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	ups := []string{"docker.io", "quay.io", "docker.io", "_default"}
	var out bytes.Buffer
	if err := WriteContainerd(root, ups, DefaultMirror, false, &out, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"docker.io", "quay.io", "_default"} {
		want, _ := ContainerdHostsTOML(ns, DefaultMirror, Options{})
		p := hostsPath(root, ns)
		if got := readFile(t, p); got != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", p, got, want)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644", p, fi.Mode(), err)
		}
		if !strings.Contains(out.String(), p+": written") {
			t.Errorf("output %q does not report %s", out.String(), p)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 3 {
		t.Errorf("output has %d lines, want 3 (duplicates collapsed):\n%s", n, out.String())
	}

	out.Reset()
	if err := WriteContainerd(root, ups, DefaultMirror, false, &out, Options{}); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := strings.Count(out.String(), ": unchanged"); got != 3 {
		t.Errorf("second run output:\n%s\nwant 3 unchanged", out.String())
	}
	assertNoStrayFiles(t, root)
}

// assertNoStrayFiles fails on temporary files left in any hosts directory.
func assertNoStrayFiles(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, CertsDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".hosts.toml") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteContainerdNeverClobbers(t *testing.T) {
	t.Parallel()
	const theirs = "server = \"https://registry-1.docker.io\"\n[host.\"https://corp-mirror\"]\n  capabilities = [\"pull\"]\n"
	root := t.TempDir()
	dockerHosts := hostsPath(root, "docker.io")
	writeFile(t, dockerHosts, theirs)

	err := WriteContainerd(root, []string{"quay.io", "docker.io"}, DefaultMirror, false, nil, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), dockerHosts) {
		t.Fatalf("err = %v, want ErrExists naming %s", err, dockerHosts)
	}
	if got := readFile(t, dockerHosts); got != theirs {
		t.Errorf("existing hosts.toml changed:\n%s", got)
	}
	if _, err := os.Stat(hostsPath(root, "quay.io")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("quay.io written although the run was refused (want all or nothing): %v", err)
	}

	// Force replaces it and keeps the original; a second forced run keeps
	// the original backup rather than backing up shoal's own file.
	var out bytes.Buffer
	if err := WriteContainerd(root, []string{"docker.io"}, DefaultMirror, false, &out, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	want, _ := ContainerdHostsTOML("docker.io", DefaultMirror, Options{})
	if got := readFile(t, dockerHosts); got != string(want) {
		t.Errorf("forced hosts.toml:\n%s", got)
	}
	if got := readFile(t, dockerHosts+backupSuffix); got != theirs {
		t.Errorf("backup:\n%s\nwant the original", got)
	}
	if !strings.Contains(out.String(), "replaced") {
		t.Errorf("output %q does not say replaced", out.String())
	}
	if err := WriteContainerd(root, []string{"docker.io"}, "http://127.0.0.1:6000", false, nil, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dockerHosts+backupSuffix); got != theirs {
		t.Errorf("second forced run replaced the original backup with:\n%s", got)
	}
	assertNoStrayFiles(t, root)
}

func TestWriteContainerdCertificateFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, CertsDir, "registry.example.com")
	caPEM := selfSignedPEM(t)
	writeFile(t, filepath.Join(dir, "ca.crt"), caPEM)
	writeFile(t, filepath.Join(dir, "client.cert"), "cert")
	writeFile(t, filepath.Join(dir, "client.key"), "key")

	err := WriteContainerd(root, []string{"registry.example.com"}, DefaultMirror, false, nil, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), filepath.Join(dir, "ca.crt")) {
		t.Fatalf("err = %v, want ErrExists naming ca.crt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hosts.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("hosts.toml written next to certificate files without Force: %v", err)
	}

	if err := WriteContainerd(root, []string{"registry.example.com"}, DefaultMirror, false, nil, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	h := decodeStrict(t, []byte(readFile(t, filepath.Join(dir, "hosts.toml"))))
	if strings.Join(h.CA, ",") != "ca.crt" || len(h.Client) != 1 || strings.Join(h.Client[0], ",") != "client.cert,client.key" {
		t.Errorf("hosts.toml names ca %v client %v; want the existing files", h.CA, h.Client)
	}
	for _, f := range []string{"ca.crt", "client.cert", "client.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A rerun without Force is a no-op, not a refusal.
	if err := WriteContainerd(root, []string{"registry.example.com"}, DefaultMirror, false, nil, Options{}); err != nil {
		t.Errorf("rerun: %v", err)
	}
	// containerd resolves the CA for the upstream, as it did from the bare
	// file before hosts.toml existed. (The client pair is not a real key, so
	// only the CA is loaded here.)
	if err := os.Remove(filepath.Join(dir, "client.cert")); err != nil {
		t.Fatal(err)
	}
	if err := WriteContainerd(root, []string{"registry.example.com"}, DefaultMirror, false, nil, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	hosts := containerdHosts(t, root, "registry.example.com")
	if len(hosts) != 2 || hosts[1].Host != "registry.example.com" {
		t.Fatalf("containerd resolved %v", hostNames(hosts))
	}
	tr, ok := hosts[1].Client.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
		t.Errorf("upstream has no CA pool from ca.crt (transport %T)", hosts[1].Client.Transport)
	}
}

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shoal test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestWriteContainerdDryRun(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	const theirs = "server = \"https://quay.io\"\n"
	writeFile(t, hostsPath(root, "quay.io"), theirs)
	var out bytes.Buffer
	err := WriteContainerd(root, []string{"docker.io", "quay.io"}, DefaultMirror, true, &out, Options{})
	if !errors.Is(err, ErrExists) {
		t.Errorf("dry run err = %v, want the refusal a real run would hit", err)
	}
	want, _ := ContainerdHostsTOML("docker.io", DefaultMirror, Options{})
	for _, s := range []string{"# " + hostsPath(root, "docker.io") + " (would create)", string(want), hostsPath(root, "quay.io") + " (refused: "} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("dry-run output lacks %q:\n%s", s, out.String())
		}
	}
	if _, err := os.Stat(hostsPath(root, "docker.io")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run wrote a file: %v", err)
	}
	if got := readFile(t, hostsPath(root, "quay.io")); got != theirs {
		t.Errorf("dry run changed quay.io: %s", got)
	}

	out.Reset()
	if err := WriteContainerd(root, []string{"quay.io"}, DefaultMirror, true, &out, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "would replace") {
		t.Errorf("forced dry run output:\n%s", out.String())
	}
	if got := readFile(t, hostsPath(root, "quay.io")); got != theirs {
		t.Errorf("forced dry run changed quay.io: %s", got)
	}
}

func TestWriteContainerdInputErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		upstreams []string
		mirror    string
	}{
		{"no upstreams", nil, DefaultMirror},
		{"bad upstream", []string{"docker.io", "../etc"}, DefaultMirror},
		{"bad mirror", []string{"docker.io"}, "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if err := WriteContainerd(root, tt.upstreams, tt.mirror, false, nil, Options{}); err == nil {
				t.Error("no error")
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("invalid input wrote %v", entries)
			}
		})
	}
}

func TestWriteContainerdNamespaceIsAFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, CertsDir, "ghcr.io"), "not a directory")
	if err := WriteContainerd(root, []string{"ghcr.io"}, DefaultMirror, false, nil, Options{Force: true}); !errors.Is(err, ErrExists) {
		t.Errorf("err = %v, want ErrExists", err)
	}
}
