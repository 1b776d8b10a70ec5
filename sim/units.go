package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bytes is a size in bytes, written in YAML as "512MiB", "8MB" or a number.
type Bytes int64

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseBytes reads a size such as "512MiB", "1.5GB" or "4096".
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	num := s
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return Bytes(math.Round(v * mult)), nil
}

// UnmarshalYAML accepts a number of bytes or a string with a unit.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseBytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String formats b with a binary unit.
func (b Bytes) String() string {
	v := float64(b)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if math.Abs(v) < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%d B", int64(b))
			}
			return fmt.Sprintf("%.1f %s", v, u)
		}
		v /= 1024
	}
	return ""
}

// Bandwidth is a rate in bytes per second, written in YAML as "1Gbit",
// "100Mbit", "125MB/s" or "1GiB/s". Zero means unlimited.
type Bandwidth float64

// ParseBandwidth reads a rate such as "10Gbit", "250Mbit" or "125MB/s".
func ParseBandwidth(s string) (Bandwidth, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "unlimited" {
		return 0, nil
	}
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Tbit", 1e12 / 8}, {"Gbit", 1e9 / 8}, {"Mbit", 1e6 / 8}, {"Kbit", 1e3 / 8}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("bandwidth %q: want a positive number", s)
			}
			return Bandwidth(v * u.mult), nil
		}
	}
	if num, ok := strings.CutSuffix(s, "/s"); ok {
		b, err := ParseBytes(num)
		if err != nil || b <= 0 {
			return 0, fmt.Errorf("bandwidth %q: want e.g. 1Gbit, 100Mbit, 125MB/s", s)
		}
		return Bandwidth(b), nil
	}
	return 0, fmt.Errorf("bandwidth %q: want e.g. 1Gbit, 100Mbit, 125MB/s or unlimited", s)
}

// UnmarshalYAML accepts the forms ParseBandwidth reads.
func (b *Bandwidth) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseBandwidth(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String formats b in bits per second.
func (b Bandwidth) String() string {
	if b == 0 {
		return "unlimited"
	}
	bits := float64(b) * 8
	switch {
	case bits >= 1e9:
		return strconv.FormatFloat(bits/1e9, 'g', 4, 64) + "Gbit"
	case bits >= 1e6:
		return strconv.FormatFloat(bits/1e6, 'g', 4, 64) + "Mbit"
	default:
		return strconv.FormatFloat(bits/1e3, 'g', 4, 64) + "Kbit"
	}
}

// Duration is a time.Duration written in YAML as "250ms" or "2m".
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: duration %q: want e.g. 250ms, 5s, 2m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
