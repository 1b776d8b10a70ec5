package locks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTagsRoundTrip(t *testing.T) {
	t.Parallel()
	in := Member{Group: "rack-1", ProxyEligible: true, Priority: 7, PeerID: "12D3Koo", PeerAddrs: []string{"/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.1/udp/4001/quic-v1"}}
	tags := encodeTags(in, map[string]string{"role": "agent"})
	var out Member
	decodeTags(&out, tags)
	out.Tags = nil
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
	if tags["role"] != "agent" {
		t.Fatal("extra tag lost")
	}
	var bad Member
	decodeTags(&bad, map[string]string{TagPriority: "x", TagProxy: "maybe"})
	if bad.Priority != 0 || bad.ProxyEligible {
		t.Fatalf("malformed tags read as %+v", bad)
	}
}

func TestLoadKeyring(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	write := func(name string, v any) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(v)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		path  string
		valid bool
	}{
		{"one key", write("ok", []string{key}), true},
		{"empty", write("empty", []string{}), false},
		{"bad base64", write("b64", []string{"!!"}), false},
		{"bad length", write("len", []string{base64.StdEncoding.EncodeToString([]byte("short"))}), false},
		{"not a list", write("obj", map[string]string{"k": key}), false},
		{"missing", filepath.Join(dir, "nope"), false},
	}
	for _, tt := range tests {
		if _, err := loadKeyring(tt.path); (err == nil) != tt.valid {
			t.Errorf("%s: %v, want valid %v", tt.name, err, tt.valid)
		}
	}
}

func TestEncryptedClusterRejectsStranger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyring := func(b byte) string {
		p := filepath.Join(dir, string('a'+b))
		k, _ := json.Marshal([]string{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))})
		if err := os.WriteFile(p, k, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	shared, other := keyring(1), keyring(2)
	var mn MemoryNetwork
	a := startSerfNode(t, &mn, "a", "g", 0, nil, nil, func(c *Config) { c.KeyringFile = shared })
	b := startSerfNode(t, &mn, "b", "g", 0, []string{a.transport.Addr()}, nil, func(c *Config) { c.KeyringFile = shared })
	s := startSerfNode(t, &mn, "stranger", "g", 0, []string{a.transport.Addr()}, nil, func(c *Config) { c.KeyringFile = other })
	t.Cleanup(func() {
		for _, n := range []*serfNode{a, b, s} {
			n.stop(false)
		}
	})
	waitFor(t, 10*time.Second, "keyed members joined", func() bool {
		return len(a.cluster.Members()) == 2 && len(b.cluster.Members()) == 2
	})
	for _, m := range a.cluster.Members() {
		if m.Name == "stranger" {
			t.Fatal("member with another key joined")
		}
	}
}

func TestSlogWriterLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))}
	tests := []struct{ in, want string }{
		{"[DEBUG] memberlist: Stream connection from=x", "level=DEBUG msg=\"Stream connection from=x\" component=memberlist"},
		{"[WARN] serf: slow", "level=WARN msg=slow component=serf"},
		{"[ERR] memberlist: boom", "level=ERROR msg=boom component=memberlist"},
		{"Err: Could not set the deadline", "level=WARN msg=\"Could not set the deadline\""},
		{"plain line", "level=INFO msg=\"plain line\""},
	}
	for _, tt := range tests {
		buf.Reset()
		if _, err := w.Write([]byte(tt.in + "\n")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), tt.want) {
			t.Errorf("%q logged as %q, want %q", tt.in, buf.String(), tt.want)
		}
	}
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := DefaultLocalConfig()
	cfg.Registerer = reg
	l, err := NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := l.Acquire(t.Context(), "m", AcquireOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lease.Release(t.Context()) }()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		if mf.GetName() == "shoal_lock_held" && mf.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Errorf("shoal_lock_held = %v, want 1", mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	for _, n := range []string{"shoal_lock_acquire_seconds", "shoal_lock_held", "shoal_proxy_is_self"} {
		if !got[n] {
			t.Errorf("metric %s not gathered", n)
		}
	}
	// A second locker on the same registry shares the collectors.
	l2, err := NewLocal(cfg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if l2.metrics.held != l.metrics.held {
		t.Fatal("second locker does not share the registered gauge")
	}
}
