package locks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The lock RPC is JSON over HTTP, so it can ride any HTTP transport: TCP on
// loopback in tests, libp2p streams in the agent.
//
//	POST /v1/locks/acquire  wireRequest → wireGrant
//	POST /v1/locks/renew    wireRequest → wireGrant
//	POST /v1/locks/release  wireRequest → wireGrant
//
// Errors are a wireError with a code that maps back to this package's
// sentinels. The hopHeader counts forwards so a request is forwarded once.
const (
	rpcPrefix   = "/v1/locks/"
	hopHeader   = "Shoal-Lock-Hops"
	maxBodySize = 64 << 10
)

// op is one lock RPC.
type op string

const (
	opAcquire op = "acquire"
	opRenew   op = "renew"
	opRelease op = "release"
)

type wireRequest struct {
	Name   string `json:"name"`
	Holder Holder `json:"holder"`
	Token  uint64 `json:"token,omitempty"`
	Limit  int    `json:"limit"`
	TTLMs  int64  `json:"ttl_ms"`
	WaitMs int64  `json:"wait_ms,omitempty"`
}

type wireGrant struct {
	Name     string `json:"name"`
	Token    uint64 `json:"token"`
	Limit    int    `json:"limit"`
	TTLMs    int64  `json:"ttl_ms"`
	WaitedNs int64  `json:"waited_ns,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Holders name the nodes holding the lock, on a try-once TIMEOUT.
	Holders []string `json:"holders,omitempty"`
}

func toWire(r Request, token uint64, wait time.Duration) wireRequest {
	// Round the wait up: an owner that gives up early would make the
	// client give up before its wait ran out.
	waitMs := (wait + time.Millisecond - 1).Milliseconds()
	return wireRequest{Name: r.Name, Holder: r.Holder, Token: token, Limit: r.Limit, TTLMs: r.TTL.Milliseconds(), WaitMs: waitMs}
}

func (w wireRequest) grant() Grant {
	return Grant{Name: w.Name, Token: w.Token, Limit: w.Limit, Holder: w.Holder, TTL: time.Duration(w.TTLMs) * time.Millisecond}
}

// errorCode maps an error to its wire code and HTTP status.
func errorCode(err error) (string, int) {
	switch {
	case errors.Is(err, ErrNotHeld):
		return "NOT_HELD", http.StatusConflict
	case errors.Is(err, ErrTimeout):
		return "TIMEOUT", http.StatusConflict
	case errors.Is(err, ErrLimitMismatch):
		return "LIMIT_MISMATCH", http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return "INVALID", http.StatusBadRequest
	case errors.Is(err, ErrGrace):
		return "GRACE", http.StatusServiceUnavailable
	case errors.Is(err, ErrNotOwner):
		return "NOT_OWNER", http.StatusMisdirectedRequest
	case errors.Is(err, ErrNoProxy):
		return "NO_PROXY", http.StatusServiceUnavailable
	default:
		return "INTERNAL", http.StatusInternalServerError
	}
}

// codeError maps a wire code back to its sentinel, or nil.
func codeError(code string) error {
	switch code {
	case "NOT_HELD":
		return ErrNotHeld
	case "TIMEOUT":
		return ErrTimeout
	case "LIMIT_MISMATCH":
		return ErrLimitMismatch
	case "INVALID":
		return ErrInvalid
	case "GRACE":
		return ErrGrace
	case "NOT_OWNER":
		return ErrNotOwner
	case "NO_PROXY":
		return ErrNoProxy
	}
	return nil
}

// handlerFunc is an HTTP handler that returns its error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap adapts h, writing its error as a wireError with the mapped status.
func wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			code, status := errorCode(err)
			we := wireError{Code: code, Message: err.Error()}
			if held := (*HeldError)(nil); errors.As(err, &held) {
				we.Holders = held.Holders
			}
			writeJSON(w, status, we)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Dialer returns the round tripper and base URL that reach member m's lock
// RPC. The agent dials libp2p streams; tests use loopback HTTP.
type Dialer func(m Member) (rt http.RoundTripper, baseURL string, err error)

// TagDialer returns a Dialer that reads a member's base URL from its tag key
// and sends over rt (nil: http.DefaultTransport).
func TagDialer(key string, rt http.RoundTripper) Dialer {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return func(m Member) (http.RoundTripper, string, error) {
		u := m.Tags[key]
		if u == "" {
			return nil, "", fmt.Errorf("member %s has no %s tag: %w", m.Name, key, ErrNoProxy)
		}
		return rt, strings.TrimSuffix(u, "/"), nil
	}
}

// post sends one RPC to member m and decodes the grant or the error.
func post(ctx context.Context, dial Dialer, m Member, o op, req wireRequest, hops int) (wireGrant, error) {
	rt, base, err := dial(m)
	if err != nil {
		return wireGrant{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return wireGrant{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+rpcPrefix+string(o), bytes.NewReader(body))
	if err != nil {
		return wireGrant{}, fmt.Errorf("%s %s at %s: %w", o, req.Name, m.Name, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(hopHeader, strconv.Itoa(hops))
	resp, err := rt.RoundTrip(hr)
	if err != nil {
		return wireGrant{}, fmt.Errorf("%s %s at %s: %w", o, req.Name, m.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxBodySize))
	if resp.StatusCode != http.StatusOK {
		var we wireError
		if err := dec.Decode(&we); err != nil {
			return wireGrant{}, fmt.Errorf("%s %s at %s: status %d", o, req.Name, m.Name, resp.StatusCode)
		}
		if we.Code == "TIMEOUT" && len(we.Holders) > 0 {
			held := &HeldError{Name: req.Name, Holders: we.Holders[:min(len(we.Holders), maxHeldNames)]}
			return wireGrant{}, fmt.Errorf("%s %s at %s: %w", o, req.Name, m.Name, held)
		}
		if s := codeError(we.Code); s != nil {
			return wireGrant{}, fmt.Errorf("%s %s at %s: %s: %w", o, req.Name, m.Name, we.Message, s)
		}
		return wireGrant{}, fmt.Errorf("%s %s at %s: status %d: %s", o, req.Name, m.Name, resp.StatusCode, we.Message)
	}
	var g wireGrant
	if err := dec.Decode(&g); err != nil {
		return wireGrant{}, fmt.Errorf("%s %s at %s: decode: %w", o, req.Name, m.Name, err)
	}
	return g, nil
}

// decodeRequest reads a wireRequest and the hop count from r.
func decodeRequest(r *http.Request) (wireRequest, int, error) {
	var req wireRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBodySize)).Decode(&req); err != nil {
		return req, 0, fmt.Errorf("decode request: %v: %w", err, ErrInvalid)
	}
	hops, _ := strconv.Atoi(r.Header.Get(hopHeader))
	if req.TTLMs < 0 || req.WaitMs < 0 || hops < 0 {
		return req, 0, fmt.Errorf("negative ttl, wait or hops: %w", ErrInvalid)
	}
	// Milliseconds past this overflow a time.Duration (found by FuzzDecodeRequest:
	// a huge ttl_ms became a negative TTL that passed the MaxTTL check).
	if maxMs := int64(math.MaxInt64 / int64(time.Millisecond)); req.TTLMs > maxMs || req.WaitMs > maxMs {
		return req, 0, fmt.Errorf("ttl or wait out of range: %w", ErrInvalid)
	}
	return req, hops, nil
}
