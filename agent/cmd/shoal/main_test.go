package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestConfigureContainerdDryRun(t *testing.T) {
	root := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"configure", "containerd", "--dry-run", "--registry", "docker.io", "--root", root}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var hosts struct {
		Server string                    `toml:"server"`
		Host   map[string]map[string]any `toml:"host"`
	}
	if err := toml.Unmarshal(out.Bytes(), &hosts); err != nil {
		t.Fatalf("dry-run output is not TOML: %v\n%s", err, out.String())
	}
	if hosts.Server != "https://registry-1.docker.io" || hosts.Host["http://127.0.0.1:5000"] == nil {
		t.Fatalf("unexpected hosts.toml: %+v", hosts)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/containerd/certs.d/docker.io/hosts.toml")); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote a file: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"agent", "--nope"}, {"configure", "podman"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("shoal %v: exit %d, want 2", args, code)
		}
		if errb.Len() == 0 {
			t.Errorf("shoal %v: no message on stderr", args)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "shoal ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

func TestParseDilation(t *testing.T) {
	got, err := parseDilation("shoal=8,hedged=2")
	if err != nil || len(got) != 2 || got["shoal"] != 8 || got["hedged"] != 2 {
		t.Fatalf("parseDilation = %v, %v", got, err)
	}
	for _, bad := range []string{"shoal", "shoal=", "=4", "shoal=x", "shoal=2,"} {
		if _, err := parseDilation(bad); err == nil || !strings.Contains(err.Error(), "strategy=N") {
			t.Errorf("parseDilation(%q) error %v, want a usage message", bad, err)
		}
	}
	// Out-of-range and unknown strategies are the scenario's checks.
	var out, errb bytes.Buffer
	if code := run([]string{"sim", "run", "--time-dilation", "shoal=0", "../../../sim/scenarios/fleet-100.yaml"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "want 1..64") {
		t.Errorf("--time-dilation shoal=0: exit %d, stderr %q", code, errb.String())
	}
}
