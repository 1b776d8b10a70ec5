package p2p

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// MaxProbeBytes bounds one probe response.
const MaxProbeBytes = 4 << 20

// errBadRequest marks a request error (400).
var errBadRequest = errors.New("bad request")

// handler is the peer-facing HTTP API:
//
//	HEAD /blobs/{digest}        size (Content-Length), Docker-Content-Digest
//	GET  /blobs/{digest}        the blob, or one Range of it (206)
//	GET  /probe?bytes=N         N pseudo-random bytes, N <= MaxProbeBytes
func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /blobs/{digest}", n.wrap(n.serveBlob))
	mux.Handle("GET /probe", n.wrap(n.serveProbe))
	n.mux = mux
	return mux
}

// wrap maps a handler's error to a status code. Once the body has started
// the connection is cut instead, so the peer never takes a truncated body
// for a complete one.
func (n *Node) wrap(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &statusWriter{ResponseWriter: w}
		err := h(cw, r)
		if err == nil {
			return
		}
		if cw.wroteHeader {
			n.log.Debug("peer response aborted", "path", r.URL.Path, "err", err)
			panic(http.ErrAbortHandler)
		}
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrBusy):
			code = http.StatusServiceUnavailable
		case errors.Is(err, errUnsatisfiableRange), errors.Is(err, errNotHeld):
			code = http.StatusRequestedRangeNotSatisfiable
		case errors.Is(err, errBadRequest), errors.Is(err, errBadRange):
			code = http.StatusBadRequest
		default:
			n.log.Warn("peer request failed", "path", r.URL.Path, "err", err)
		}
		http.Error(w, err.Error(), code)
	})
}

func (n *Node) serveBlob(w http.ResponseWriter, r *http.Request) error {
	d, err := digest.Parse(r.PathValue("digest"))
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	h := w.Header()
	if asker, err := peer.Decode(r.RemoteAddr); err == nil && (r.Header.Get(HeaderHeldOnly) != "" || r.Method == http.MethodHead) {
		// Swarm downloaders learn each other from here (peer exchange),
		// even before this host has the blob: it may hold the origin lock
		// and be about to fetch it.
		now := time.Now()
		if v := n.pexHeader(d, asker, now); v != "" {
			h.Set(HeaderPeers, v)
		}
		n.pex.note(d, asker, now)
	}
	rc, size, err := n.src.OpenBlob(r.Context(), d)
	if err != nil {
		return fmt.Errorf("open %s: %w", d, err)
	}
	defer rc.Close()

	if v := r.Header.Get(HeaderWant); v != "" && r.Method == http.MethodHead {
		want, err := parseHave(v, size)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", errBadRequest, HeaderWant, err)
		}
		awaitWanted(r.Context(), rc, size, want, longPollWait)
	}
	off, length, partial, err := parseRange(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return err
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	uploaders, slots := n.slots.load()
	avail, have := availableOf(rc, size)
	h.Set(HeaderAvailable, strconv.FormatInt(avail, 10))
	if have != nil {
		h.Set(HeaderHave, formatHave(have))
	}
	h.Set(HeaderUploaders, strconv.Itoa(uploaders))
	h.Set(HeaderUploadSlots, strconv.Itoa(slots))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", contentRange(off, length, size))
		status = http.StatusPartialContent
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	if r.Header.Get(HeaderHeldOnly) != "" {
		if have != nil && !holds(have, off, off+length) {
			return errNotHeld // the swarm asks elsewhere rather than wait here
		}
		// A request for the whole blob (a blob of one chunk: a manifest,
		// a config, a small layer) is not spread: there is no other range
		// to trade, so spreading would only serve its requesters one at a
		// time.
		if length < size {
			if !n.spread.take(d, off) {
				h.Set(HeaderBusy, BusyRange)
				return errRangeBusy // it is going out to a peer now: ask it later
			}
			defer n.spread.done(d, off)
		}
	}
	if !n.slots.take(r.RemoteAddr) {
		h.Set(HeaderBusy, BusySlots)
		return ErrBusy
	}
	defer n.slots.release(r.RemoteAddr)
	n.uploads.Add(1)
	defer n.uploads.Add(-1)
	if _, err := rc.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s to %d: %w", d, off, err)
	}
	w.WriteHeader(status)
	buf := n.copyBuf()
	defer n.copyBufs.Put(buf)
	written, err := io.CopyBuffer(w, io.LimitReader(rc, length), *buf)
	n.served.Add(written)
	if err != nil {
		return fmt.Errorf("send %s: %w", d, err)
	}
	if written != length {
		return fmt.Errorf("send %s: %w", d, io.ErrUnexpectedEOF)
	}
	return nil
}

// copyBuf returns a 256 KiB buffer from n.copyBufs (put it back there).
// Large writes keep the cache's per-write work (locks, hashing, waking
// the readers that follow a blob) small per byte.
func (n *Node) copyBuf() *[]byte {
	if buf, _ := n.copyBufs.Get().(*[]byte); buf != nil {
		return buf
	}
	b := make([]byte, 256<<10)
	return &b
}

func (n *Node) serveProbe(w http.ResponseWriter, r *http.Request) error {
	size, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || size < 0 || size > MaxProbeBytes {
		return fmt.Errorf("%w: probe size must be 0..%d", errBadRequest, MaxProbeBytes)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	var seed [32]byte
	rng := rand.NewChaCha8(seed)
	if _, err := io.CopyN(w, rng, size); err != nil {
		return fmt.Errorf("send probe: %w", err)
	}
	return nil
}

// statusWriter remembers whether the status line went out.
type statusWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (c *statusWriter) WriteHeader(code int) {
	c.wroteHeader = true
	c.ResponseWriter.WriteHeader(code)
}

func (c *statusWriter) Write(b []byte) (int, error) {
	c.wroteHeader = true
	return c.ResponseWriter.Write(b)
}
