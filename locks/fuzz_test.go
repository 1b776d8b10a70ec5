package locks

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary lock RPC bodies and hop headers to the
// server's decoder: it either refuses them as ErrInvalid or returns a
// request with no negative TTL, wait or hop count.
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range []struct{ body, hops string }{
		{`{"name":"fetch/x","holder":{"node":"a","id":"1"},"limit":1,"ttl_ms":1000}`, "0"},
		{`{"name":"x","ttl_ms":-1}`, ""}, {`{"name":"x","wait_ms":-5}`, "1"}, {`{"name":"x"}`, "-1"},
		{`{"name":1}`, ""}, {`not json`, ""}, {`{"name":"x","token":18446744073709551615,"limit":-9}`, "99999999999999999999"},
		{``, ""}, {`[]`, "x"}, {`{"name":"x","ttl_ms":9223372036854775807}`, "0"},
	} {
		f.Add([]byte(c.body), c.hops)
	}
	f.Fuzz(func(t *testing.T, body []byte, hops string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/locks/acquire", bytes.NewReader(body))
		r.Header.Set(hopHeader, hops)
		req, h, err := decodeRequest(r)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("decodeRequest(%q): error %v is not ErrInvalid", body, err)
			}
			return
		}
		if req.TTLMs < 0 || req.WaitMs < 0 || h < 0 {
			t.Fatalf("decodeRequest(%q, hops %q) accepted %+v hops %d", body, hops, req, h)
		}
		if g := req.grant(); g.TTL < 0 {
			t.Fatalf("grant of %+v has a negative TTL", req)
		}
	})
}

// FuzzDecodeTags: any serf tag map a stranger could gossip decodes without
// panicking, and re-encoding the member keeps its group and peer ID.
func FuzzDecodeTags(f *testing.F) {
	f.Add("rack-1", "true", "10", "12D3KooWabc", "/ip4/127.0.0.1/tcp/1 /ip4/10.0.0.1/tcp/2")
	f.Add("", "maybe", "-99999999999999999999", "", "   ")
	f.Fuzz(func(t *testing.T, group, proxy, prio, peerID, addrs string) {
		tags := map[string]string{TagGroup: group, TagProxy: proxy, TagPriority: prio, TagPeerID: peerID, TagAddrs: addrs}
		var m Member
		decodeTags(&m, tags)
		if m.Group != group || m.PeerID != peerID {
			t.Fatalf("decodeTags lost group or peer ID: %+v", m)
		}
		var back Member
		decodeTags(&back, encodeTags(m, nil))
		if back.Group != m.Group || back.PeerID != m.PeerID || back.Priority != m.Priority ||
			back.ProxyEligible != m.ProxyEligible || len(back.PeerAddrs) != len(m.PeerAddrs) {
			t.Fatalf("tags do not round-trip: %+v vs %+v", m, back)
		}
	})
}

// FuzzLoadKeyring: a keyring file either loads with a valid primary key
// (16, 24 or 32 bytes) or is refused with an error.
func FuzzLoadKeyring(f *testing.F) {
	f.Add([]byte(`["cg8StVXbQJ0gPvMd9o7yrg=="]`))
	f.Add([]byte(`["cg8StVXbQJ0gPvMd9o7yrg==","T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s="]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`["not base64"]`))
	f.Add([]byte(`["AAAA"]`))
	f.Add([]byte(`{"keys":1}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(dir, "keyring.json")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		kr, err := loadKeyring(path)
		if err != nil {
			return
		}
		switch n := len(kr.GetPrimaryKey()); n {
		case 16, 24, 32:
		default:
			t.Fatalf("keyring %q loaded with a %d-byte primary key", content, n)
		}
	})
}
