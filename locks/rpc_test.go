package locks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// singleOwner is a one-member fleet: the member is proxy and owner.
func singleOwner(t *testing.T) *Service {
	t.Helper()
	f := newLockFleet(t, testServiceConfig())
	n := f.start("solo", "g", 0, true)
	f.waitSettled(5 * time.Second)
	return n.svc
}

func TestRPCCalls(t *testing.T) {
	t.Parallel()
	svc := singleOwner(t)
	h := Holder{Node: "solo", ID: "h1"}
	body := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	acq := body(wireRequest{Name: "x", Holder: h, Limit: 1, TTLMs: 1000})
	tests := []struct {
		name, method, path, body string
		hops                     string
		status                   int
		code                     string
	}{
		{"acquire", "POST", "/v1/locks/acquire", acq, "", 200, ""},
		{"acquire again is idempotent", "POST", "/v1/locks/acquire", acq, "", 200, ""},
		{"busy", "POST", "/v1/locks/acquire", body(wireRequest{Name: "x", Holder: Holder{"solo", "h2"}, Limit: 1, TTLMs: 1000}), "", 409, "TIMEOUT"},
		{"limit mismatch", "POST", "/v1/locks/acquire", body(wireRequest{Name: "x", Holder: Holder{"solo", "h2"}, Limit: 2, TTLMs: 1000}), "", 409, "LIMIT_MISMATCH"},
		{"ttl above max", "POST", "/v1/locks/acquire", body(wireRequest{Name: "y", Holder: h, Limit: 1, TTLMs: 60000}), "", 400, "INVALID"},
		{"empty name", "POST", "/v1/locks/acquire", body(wireRequest{Holder: h, Limit: 1, TTLMs: 1000}), "", 400, "INVALID"},
		{"bad json", "POST", "/v1/locks/acquire", "{", "", 400, "INVALID"},
		{"negative wait", "POST", "/v1/locks/acquire", body(wireRequest{Name: "y", Holder: h, Limit: 1, TTLMs: 1000, WaitMs: -1}), "", 400, "INVALID"},
		{"renew unknown", "POST", "/v1/locks/renew", body(wireRequest{Name: "x", Holder: h, Token: 1, Limit: 1, TTLMs: 1000}), "", 409, "NOT_HELD"},
		{"release unknown", "POST", "/v1/locks/release", body(wireRequest{Name: "z", Holder: h, Token: 1, Limit: 1, TTLMs: 1000}), "", 409, "NOT_HELD"},
		{"wrong method", "GET", "/v1/locks/acquire", "", "", 405, ""},
		{"unknown op", "POST", "/v1/locks/steal", acq, "", 404, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		if tt.hops != "" {
			r.Header.Set(hopHeader, tt.hops)
		}
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, w.Code, tt.status, w.Body)
			continue
		}
		if tt.code != "" {
			var we wireError
			if err := json.Unmarshal(w.Body.Bytes(), &we); err != nil || we.Code != tt.code {
				t.Errorf("%s: error %+v (%v), want code %s", tt.name, we, err, tt.code)
			}
		}
	}
}

func TestRPCForwardedOnlyOnce(t *testing.T) {
	t.Parallel()
	f := newLockFleet(t, testServiceConfig())
	f.startGroups(2, 1)
	f.waitSettled(5 * time.Second)
	// Find a lock that g0-n0 does not own and send it there as if already
	// forwarded: it must refuse rather than forward again.
	name := ""
	for i := 0; name == ""; i++ {
		if c := fmt.Sprint(i); f.ownerOf(c) != "g0-n0" {
			name = c
		}
	}
	b, _ := json.Marshal(wireRequest{Name: name, Holder: Holder{"x", "y"}, Limit: 1, TTLMs: 500})
	r := httptest.NewRequest("POST", "/v1/locks/acquire", strings.NewReader(string(b)))
	r.Header.Set(hopHeader, "1")
	w := httptest.NewRecorder()
	f.node("g0-n0").svc.ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Fatalf("status %d, want 421: %s", w.Code, w.Body)
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, sentinel := range []error{ErrNotHeld, ErrTimeout, ErrGrace, ErrLimitMismatch, ErrNotOwner, ErrNoProxy, ErrInvalid} {
		code, status := errorCode(fmt.Errorf("wrapped: %w", sentinel))
		if got := codeError(code); !errors.Is(got, sentinel) || status < 400 {
			t.Errorf("%v: code %s status %d maps back to %v", sentinel, code, status, got)
		}
	}
	if code, status := errorCode(errors.New("boom")); code != "INTERNAL" || status != 500 {
		t.Errorf("unknown error: %s %d", code, status)
	}
}

func TestTagDialer(t *testing.T) {
	t.Parallel()
	d := TagDialer(urlTag, nil)
	if _, base, err := d(Member{Name: "a", Tags: map[string]string{urlTag: "http://127.0.0.1:1/"}}); err != nil || base != "http://127.0.0.1:1" {
		t.Fatalf("base %q, %v", base, err)
	}
	if _, _, err := d(Member{Name: "b"}); !errors.Is(err, ErrNoProxy) {
		t.Fatalf("missing tag: %v", err)
	}
}

func TestServiceAdvertisesEpoch(t *testing.T) {
	t.Parallel()
	f := newLockFleet(t, testServiceConfig())
	f.startGroups(2, 2)
	f.waitSettled(10 * time.Second)
	// Every proxy advertises its epoch; the successor of a failed proxy
	// starts above the highest one.
	var highest uint64
	for _, m := range f.mm.Members() {
		if !m.ProxyEligible || m.Name[len(m.Name)-1] != '1' {
			continue
		}
		e := maxEpoch([]Member{m}, "")
		if e == 0 {
			t.Fatalf("proxy %s advertises no epoch", m.Name)
		}
		highest = max(highest, e)
	}
	f.kill("g0-n1")
	waitFor(t, 5*time.Second, "successor's epoch", func() bool {
		for _, m := range f.mm.Members() {
			if m.Name == "g0-n0" {
				return maxEpoch([]Member{m}, "") > highest
			}
		}
		return false
	})
}
