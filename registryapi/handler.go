package registryapi

import (
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Options configures the handler.
type Options struct {
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// MaxManifestBytes bounds a pushed manifest (default 4 MiB); a larger
	// one is refused with 413.
	MaxManifestBytes int64
	// MaxUploadBytes bounds a blob upload; 0 means unlimited.
	MaxUploadBytes int64
	// OnRequest, if non-nil, is called after each request with the method,
	// the route name (base, blob, upload, manifest, tags, referrers,
	// catalog, unknown), the status and the duration.
	OnRequest func(method, route string, code int, d time.Duration)
}

// DefaultMaxManifestBytes is the default bound on a pushed manifest.
const DefaultMaxManifestBytes = 4 << 20

// DefaultOptions returns the defaults: no logging, 4 MiB manifests,
// unlimited uploads, no request hook.
func DefaultOptions() Options {
	return Options{MaxManifestBytes: DefaultMaxManifestBytes}
}

// handler serves the API over a Backend.
type handler struct {
	b     Backend
	opts  Options
	log   *slog.Logger
	table map[route]methods
}

// NewHandler returns an http.Handler serving the OCI Distribution API v1.1
// under /v2/ over b. Zero fields of opts take their defaults.
func NewHandler(b Backend, opts Options) http.Handler {
	if opts.MaxManifestBytes <= 0 {
		opts.MaxManifestBytes = DefaultMaxManifestBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, opts: opts, log: log}
	h.table = h.routes()
	return h
}

// handlerFunc is an API handler: it writes a success response or returns
// an error for ServeHTTP to map to status + OCI JSON.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rt route) error

// ServeHTTP routes the request and maps a returned error to its response.
// Repository names contain slashes, so stdlib patterns cannot split
// /v2/<name>/<endpoint>; parsePath does it from the end of the path.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rt, ok, err := parsePath(r.URL.EscapedPath())
	kind := rt.kind
	if !ok {
		kind = routeUnknown
	}
	defer func() {
		if h.opts.OnRequest != nil {
			h.opts.OnRequest(r.Method, string(kind), rec.status(), time.Since(start))
		}
	}()
	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if ns := r.URL.Query().Get("ns"); ns != "" {
		r = r.WithContext(WithNamespace(r.Context(), ns))
	}
	if err == nil {
		if !ok {
			err = apiErr(codeNotFound, map[string]string{"path": truncate(r.URL.Path, 300)})
		} else {
			err = h.dispatch(rec, r, rt)
		}
	}
	if err == nil {
		return
	}
	e := asAPIError(err)
	if rec.wrote {
		// Headers are gone; the client must not see a complete response.
		h.log.ErrorContext(r.Context(), "request failed after response started",
			"method", r.Method, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	level := slog.LevelDebug
	if e.Code.Status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"code", e.Code.Code, "status", e.Code.Status, "err", err)
	writeError(rec, r, e)
}

// methods maps each endpoint to its handlers by method.
type methods map[string]handlerFunc

// routes builds the routing table; an upload route without an id is the
// upload start endpoint.
func (h *handler) routes() map[route]methods {
	return map[route]methods{
		{kind: routeBase}:      {http.MethodGet: h.base, http.MethodHead: h.base},
		{kind: routeCatalog}:   {http.MethodGet: h.catalog},
		{kind: routeTags}:      {http.MethodGet: h.tags},
		{kind: routeReferrers}: {http.MethodGet: h.referrers},
		{kind: routeBlob}:      {http.MethodGet: h.getBlob, http.MethodHead: h.getBlob, http.MethodDelete: h.deleteBlob},
		{kind: routeManifest}: {
			http.MethodGet: h.getManifest, http.MethodHead: h.getManifest,
			http.MethodPut: h.putManifest, http.MethodDelete: h.deleteManifest,
		},
		{kind: routeUpload}: {http.MethodPost: h.startUpload},
		{kind: routeUpload, arg: "id"}: {
			http.MethodGet: h.uploadStatus, http.MethodPatch: h.patchUpload,
			http.MethodPut: h.putUpload, http.MethodDelete: h.cancelUpload,
		},
	}
}

// dispatch calls the handler for the route and method; another method is
// UNSUPPORTED (405) with an Allow header.
func (h *handler) dispatch(w http.ResponseWriter, r *http.Request, rt route) error {
	key := route{kind: rt.kind}
	if rt.kind == routeUpload && rt.arg != "" {
		key.arg = "id"
	}
	ms := h.table[key]
	if f, ok := ms[r.Method]; ok {
		return f(w, r, rt)
	}
	allow := slices.Sorted(maps.Keys(ms))
	return &Error{
		Code:   CodeUnsupported,
		Detail: map[string]string{"method": truncate(r.Method, 20)},
		Header: http.Header{"Allow": {strings.Join(allow, ", ")}},
	}
}

// base answers the version check.
func (h *handler) base(w http.ResponseWriter, r *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, "{}")
	}
	return nil
}

// recorder notes the status and whether headers were sent. It forwards
// ReadFrom so io.Copy from an *os.File still reaches sendfile.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

// WriteHeader records the first status and forwards.
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write forwards, recording an implicit 200.
func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(p)
}

// ReadFrom forwards to the underlying writer's ReadFrom when it has one.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush forwards to the underlying writer.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) status() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.code
}
