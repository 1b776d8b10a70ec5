package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "shoal.yaml")
	yaml := "data_dir: " + dir + "/from-file\nregistry_addr: 127.0.0.1:6000\ncache:\n  max_bytes: 2GiB\norigins: [file:///srv/a]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHOAL_REGISTRY_ADDR": "127.0.0.1:7000", "SHOAL_ORIGIN": "file:///srv/b,file:///srv/c"}
	tests := []struct {
		name       string
		args       []string
		wantAddr   string
		wantOrigin []string
		wantMax    ByteSize
	}{
		{"file and env", []string{"--config", file}, "127.0.0.1:7000", []string{"file:///srv/b", "file:///srv/c"}, 2 << 30},
		{"flags win", []string{"--config", file, "--registry-addr", "127.0.0.1:8000", "--origin", "file:///x", "--origin", "file:///y", "--cache-max-bytes", "10MB"},
			"127.0.0.1:8000", []string{"file:///x", "file:///y"}, 10e6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.args, func(k string) string { return env[k] }, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if c.RegistryAddr != tc.wantAddr || strings.Join(c.Origins, " ") != strings.Join(tc.wantOrigin, " ") || c.Cache.MaxBytes != tc.wantMax {
				t.Fatalf("got addr %s origins %v max %d", c.RegistryAddr, c.Origins, c.Cache.MaxBytes)
			}
			if c.DataDir != dir+"/from-file" {
				t.Fatalf("data dir %s", c.DataDir)
			}
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Load([]string{"--data-dir", dir}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.RegistryAddr != "127.0.0.1:5000" || c.AdminAddr != "127.0.0.1:5001" {
		t.Fatalf("default addresses %s %s", c.RegistryAddr, c.AdminAddr)
	}
	if want := "file://" + filepath.Join(dir, "origin"); len(c.Origins) != 1 || c.Origins[0] != want {
		t.Fatalf("default origin %v, want %s", c.Origins, want)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("no_such_key: 1\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "usage"},
		{"bad size", []string{"--cache-max-bytes", "lots"}, "size"},
		{"bad addr", []string{"--data-dir", dir, "--registry-addr", "nowhere"}, "registry_addr"},
		{"bad origin scheme", []string{"--data-dir", dir, "--origin", "ftp://x/y"}, "unsupported scheme"},
		{"bad watermarks", []string{"--data-dir", dir, "--cache-low-watermark", "0.95"}, "watermarks"},
		{"bad replication", []string{"--data-dir", dir, "--push-replication", "maybe"}, "push.replication"},
		{"unknown yaml key", []string{"--config", bad}, "no_such_key"},
		{"missing file", []string{"--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{"stray argument", []string{"--data-dir", dir, "extra"}, "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.args, func(string) string { return "" }, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "SHOAL_DATA_DIR") {
		t.Fatalf("--help: err %v, output %q", err, out.String())
	}
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]ByteSize{"0": 0, "1024": 1024, "1KiB": 1024, "1.5GiB": 3 << 29, "10MB": 10e6, "3 TiB": 3 << 40} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "abc", "1XB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", in)
		}
	}
}
