package mirror

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/pelletier/go-toml/v2"
)

// hostsFile is the hosts.toml structure containerd documents (docs/hosts.md),
// decoded strictly so that a misspelt key, which containerd would silently
// ignore, fails the test.
type hostsFile struct {
	Server string     `toml:"server"`
	CA     []string   `toml:"ca"`
	Client [][]string `toml:"client"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
	} `toml:"host"`
}

func decodeStrict(t *testing.T, b []byte) hostsFile {
	t.Helper()
	var h hostsFile
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("decode hosts.toml: %v\n%s", err, b)
	}
	return h
}

func TestContainerdHostsTOMLContent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, upstream, mirror string
		opts                   Options
		wantServer             string
		wantHost               string
		wantCaps               []string
	}{
		{"docker hub", "docker.io", DefaultMirror, Options{}, "https://registry-1.docker.io", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"quay", "quay.io", DefaultMirror, Options{}, "https://quay.io", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"upstream with port", "registry.example.com:5000", DefaultMirror, Options{}, "https://registry.example.com:5000", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"ipv6 upstream", "[fd00::1]:5000", DefaultMirror, Options{}, "https://[fd00::1]:5000", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"default namespace", "_default", DefaultMirror, Options{}, "", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"upper case and trailing slash", "Docker.IO", "HTTP://127.0.0.1:5000/", Options{}, "https://registry-1.docker.io", "http://127.0.0.1:5000", []string{"pull", "resolve"}},
		{"https mirror, pull only", "ghcr.io", "https://shoal.internal:8443", Options{Capabilities: []string{"pull"}}, "https://ghcr.io", "https://shoal.internal:8443", []string{"pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := ContainerdHostsTOML(tt.upstream, tt.mirror, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			h := decodeStrict(t, b)
			if h.Server != tt.wantServer {
				t.Errorf("server = %q, want %q", h.Server, tt.wantServer)
			}
			if len(h.Host) != 1 {
				t.Fatalf("hosts = %v, want only %s", h.Host, tt.wantHost)
			}
			got, ok := h.Host[tt.wantHost]
			if !ok || strings.Join(got.Capabilities, ",") != strings.Join(tt.wantCaps, ",") {
				t.Errorf("host entries %v, want %s with %v", h.Host, tt.wantHost, tt.wantCaps)
			}
		})
	}
}

// TestContainerdHostsTOMLGolden pins the exact bytes: WriteContainerd's
// idempotence compares them, so a change here must be deliberate.
func TestContainerdHostsTOMLGolden(t *testing.T) {
	t.Parallel()
	got, err := ContainerdHostsTOML("docker.io", DefaultMirror, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `# Written by shoal (shoal configure containerd).
# Images from docker.io are pulled through the local shoal agent first;
# containerd falls back to the server below when the agent fails.
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestContainerdHostsTOMLRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, upstream, mirror string
		opts                   Options
	}{
		{"scheme in upstream", "https://docker.io", DefaultMirror, Options{}},
		{"path in upstream", "docker.io/library", DefaultMirror, Options{}},
		{"empty upstream", "", DefaultMirror, Options{}},
		{"bad port", "docker.io:99999", DefaultMirror, Options{}},
		{"empty port", "docker.io:", DefaultMirror, Options{}},
		{"quote in upstream", `docker.io"`, DefaultMirror, Options{}},
		{"dot dot", "a..b", DefaultMirror, Options{}},
		{"bad ipv6", "[zz::1]:5000", DefaultMirror, Options{}},
		{"mirror without scheme", "docker.io", "127.0.0.1:5000", Options{}},
		{"mirror with path", "docker.io", "http://127.0.0.1:5000/v2", Options{}},
		{"mirror with credentials", "docker.io", "http://u:p@127.0.0.1:5000", Options{}},
		{"mirror ftp", "docker.io", "ftp://127.0.0.1:5000", Options{}},
		{"mirror is upstream", "127.0.0.1:5000", DefaultMirror, Options{}},
		{"unknown capability", "docker.io", DefaultMirror, Options{Capabilities: []string{"pull", "delete"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := ContainerdHostsTOML(tt.upstream, tt.mirror, tt.opts)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ContainerdHostsTOML(%q, %q) = %q, %v; want ErrInvalid", tt.upstream, tt.mirror, b, err)
			}
		})
	}
}

// TestContainerdLoadsGeneratedHosts runs containerd's own loader
// (core/remotes/docker/config v2.1.5, the code CRI and ctr use) over the
// files WriteContainerd writes and checks the registry hosts it resolves:
// the mirror first, with exactly the pull and resolve capabilities and the
// /v2 API path, then the upstream.
func TestContainerdLoadsGeneratedHosts(t *testing.T) {
	t.Parallel()
	const all = docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush
	const pullResolve = docker.HostCapabilityPull | docker.HostCapabilityResolve
	mirrorHost := docker.RegistryHost{Scheme: "http", Host: "127.0.0.1:5000", Path: "/v2", Capabilities: pullResolve}
	tests := []struct {
		name      string
		upstreams []string
		pull      string // the registry host an image reference names
		want      []docker.RegistryHost
	}{
		{"docker hub", []string{"docker.io"}, "docker.io", []docker.RegistryHost{
			mirrorHost, {Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: all}}},
		{"port", []string{"registry.example.com:5000"}, "registry.example.com:5000", []docker.RegistryHost{
			mirrorHost, {Scheme: "https", Host: "registry.example.com:5000", Path: "/v2", Capabilities: all}}},
		{"default mirrors everything", []string{"_default"}, "quay.io", []docker.RegistryHost{
			mirrorHost, {Scheme: "https", Host: "quay.io", Path: "/v2", Capabilities: all}}},
		{"specific beats default", []string{"_default", "ghcr.io"}, "ghcr.io", []docker.RegistryHost{
			mirrorHost, {Scheme: "https", Host: "ghcr.io", Path: "/v2", Capabilities: all}}},
		{"unlisted registry is not mirrored", []string{"docker.io"}, "quay.io", []docker.RegistryHost{
			{Scheme: "https", Host: "quay.io", Path: "/v2", Capabilities: all}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if err := WriteContainerd(root, tt.upstreams, DefaultMirror, false, nil, Options{}); err != nil {
				t.Fatal(err)
			}
			hosts := containerdHosts(t, root, tt.pull)
			if len(hosts) != len(tt.want) {
				t.Fatalf("containerd resolved %d hosts %v, want %v", len(hosts), hostNames(hosts), hostNames(tt.want))
			}
			for i, h := range hosts {
				w := tt.want[i]
				if h.Scheme != w.Scheme || h.Host != w.Host || h.Path != w.Path || h.Capabilities != w.Capabilities {
					t.Errorf("host %d = %s://%s%s caps %b, want %s://%s%s caps %b", i, h.Scheme, h.Host, h.Path, h.Capabilities, w.Scheme, w.Host, w.Path, w.Capabilities)
				}
			}
		})
	}
}

// containerdHosts asks containerd's loader which hosts it would contact
// for an image from registry host pull, with hosts.toml files under root.
func containerdHosts(t *testing.T, root, pull string) []docker.RegistryHost {
	t.Helper()
	hosts, err := config.ConfigureHosts(t.Context(), config.HostOptions{
		HostDir: config.HostDirFromRoot(filepath.Join(root, CertsDir)),
	})(pull)
	if err != nil {
		t.Fatalf("containerd ConfigureHosts(%s): %v", pull, err)
	}
	return hosts
}

func hostNames(hs []docker.RegistryHost) []string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Scheme+"://"+h.Host+h.Path)
	}
	return s
}

// TestContainerdReadsPortDirectoryItFinds checks that, when containerd's
// preferred "host_port_" directory already exists, the file goes there:
// containerd would read that one and never look at "host:port".
func TestContainerdReadsPortDirectoryItFinds(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, CertsDir, "registry.example.com_5000_")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteContainerd(root, []string{"registry.example.com:5000"}, DefaultMirror, false, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hosts.toml")); err != nil {
		t.Fatalf("hosts.toml not in the existing %s: %v", dir, err)
	}
	hosts := containerdHosts(t, root, "registry.example.com:5000")
	if len(hosts) != 2 || hosts[0].Host != "127.0.0.1:5000" {
		t.Errorf("containerd resolved %v, want the mirror first", hostNames(hosts))
	}
}
