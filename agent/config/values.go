package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var errEOF = io.EOF

// ByteSize is a number of bytes written plainly or with a unit
// (KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024).
type ByteSize int64

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseByteSize parses "1073741824", "512MiB" or "10GB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || !(n >= 0) { // !(n >= 0) also refuses NaN
		return 0, fmt.Errorf("size %q: want a non-negative number of bytes, optionally with KiB/MiB/GiB/TiB or KB/MB/GB/TB", s)
	}
	// 2^63 bytes and more (and Inf) would wrap to a negative int64.
	if v := n * float64(mult); v < 1<<63 {
		return ByteSize(v), nil
	}
	return 0, fmt.Errorf("size %q: too large (8 EiB or more)", s)
}

// String prints the size in bytes.
func (b ByteSize) String() string { return strconv.FormatInt(int64(b), 10) }

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML accepts a number or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	return b.Set(n.Value)
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log.level: %q, want debug, info, warn or error", s)
	}
	return l, nil
}

// Duration is a time.Duration written as "90s" or "2m".
type Duration time.Duration

// String prints the duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. 30s or 2m", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML accepts "30s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return d.Set(n.Value) }
