package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadFile feeds arbitrary YAML to the config loader: it either refuses
// the file or yields a configuration that Finish and Validate handle without
// panicking; a configuration that validates has sane cache watermarks.
func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"", "data_dir: /tmp/x\n", "cache:\n  max_bytes: 20GiB\n  high_watermark: 0.9\n  low_watermark: 0.5\n",
		"cache:\n  max_bytes: -1\n", "cache:\n  max_bytes: 99999999999999999999TiB\n", "origins: [\"file:///x\", \"s3://b?endpoint=h:1\"]\n",
		"unknown_key: 1\n", "p2p: {enabled: true, listen: [\"/ip4/127.0.0.1/tcp/0\"]}\n", "drain_timeout: -5s\n", "log: {level: loud}\n",
		"mirror: {upstreams: [\"docker.io\", \"local=http://127.0.0.1:1\"]}\n", "[1, 2", "&a [*a]\n", "serf: {enabled: true, p2p: 1}\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		c := Default()
		c.DataDir = dir
		if err := c.LoadFile(path); err != nil {
			if !strings.Contains(err.Error(), path) && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("LoadFile error does not name the file: %v", err)
			}
			return
		}
		if c.DataDir == "" {
			c.DataDir = dir // Finish would pick a host directory
		}
		if err := c.Finish(); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		if c.Cache.MaxBytes < 0 || !(c.Cache.LowWatermark < c.Cache.HighWatermark) || c.Cache.HighWatermark > 1 {
			t.Fatalf("Validate accepted cache %+v", c.Cache)
		}
	})
}

// FuzzParseByteSize: an accepted size is never negative.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "1024", "20GiB", "1.5MiB", "-1", "1e30", "9223372036854775807", "8EiB", "16TiB", " 1 KiB", "NaNGiB", "InfTiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err == nil && b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d", s, b)
		}
	})
}
