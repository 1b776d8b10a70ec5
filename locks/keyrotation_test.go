package locks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeKeyring writes a keyring file with the given keys (first primary).
func writeKeyring(t *testing.T, path string, keys ...byte) {
	t.Helper()
	var enc []string
	for _, k := range keys {
		enc = append(enc, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{k}, 32)))
	}
	b, _ := json.Marshal(enc)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// aliveNames lists the members n sees alive.
func aliveNames(n *serfNode) []string {
	var out []string
	for _, m := range n.cluster.Members() {
		if m.Status == StatusAlive {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestKeyringRotation follows the procedure in docs/OPERATIONS.md ("The
// serf keyring"): three members rotate from key 1 to key 2 by rewriting
// their keyring file and restarting one at a time, in three steps
// (install: [1,2], use: [2,1], remove: [2]). After every restart all three
// see each other alive. At the end a node with only the old key is
// refused, asserted on both sides: the members do not list it and it sees
// only itself.
func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	names := []string{"k1", "k2", "k3"}
	files := map[string]string{}
	for _, n := range names {
		files[n] = filepath.Join(dir, n+".keyring")
		writeKeyring(t, files[n], 1)
	}
	var mn MemoryNetwork
	for _, n := range append(slices.Clone(names), "old", "stranger") {
		mn.NewTransport(n) // every transport before any node starts
	}
	nodes := map[string]*serfNode{}
	start := func(name string) {
		var join []string
		for _, o := range names {
			if o != name && nodes[o] != nil {
				join = append(join, nodes[o].transport.Addr())
			}
		}
		nodes[name] = startSerfNode(t, &mn, name, "g", 0, join, nil, func(c *Config) { c.KeyringFile = files[name] })
	}
	for _, n := range names {
		start(n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop(false)
		}
	})
	all := func(step string) {
		t.Helper()
		waitFor(t, 20*time.Second, "all members alive after "+step, func() bool {
			for _, n := range names {
				if !slices.Equal(aliveNames(nodes[n]), names) {
					return false
				}
			}
			return true
		})
	}
	all("start")
	for _, step := range []struct {
		name string
		keys []byte
	}{{"install", []byte{1, 2}}, {"use", []byte{2, 1}}, {"remove", []byte{2}}} {
		for _, n := range names {
			nodes[n].stop(false)
			delete(nodes, n)
			writeKeyring(t, files[n], step.keys...)
			start(n)
			all(step.name + " on " + n)
		}
	}

	// A node still on the old key cannot join; nor can a stranger.
	oldFile, strangerFile := filepath.Join(dir, "old.keyring"), filepath.Join(dir, "stranger.keyring")
	writeKeyring(t, oldFile, 1)
	writeKeyring(t, strangerFile, 9)
	for name, file := range map[string]string{"old": oldFile, "stranger": strangerFile} {
		out := startSerfNode(t, &mn, name, "g", 0, []string{nodes["k1"].transport.Addr()}, nil, func(c *Config) { c.KeyringFile = file })
		t.Cleanup(func() { out.stop(false) })
		time.Sleep(time.Second) // its joins retry every 20 ms: give them time to fail
		for _, n := range names {
			if slices.Contains(aliveNames(nodes[n]), name) {
				t.Fatalf("%s lists %s, whose keyring lacks the current key", n, name)
			}
		}
		if got := aliveNames(out); !slices.Equal(got, []string{name}) {
			t.Fatalf("%s sees %v, want only itself", name, got)
		}
	}
	all("the refusals")
}
