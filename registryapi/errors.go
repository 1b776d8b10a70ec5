package registryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrorCode is an OCI distribution error code with the HTTP status it is
// served with. Codes are registered once, below; handlers refer to them by
// variable.
type ErrorCode struct {
	// Code is the wire code, e.g. "BLOB_UNKNOWN".
	Code string
	// Status is the HTTP status the code is served with.
	Status int
	// Message is the default human-readable message.
	Message string
}

// registered holds every code, keyed by code and status, so a code can't be
// registered twice with the same meaning.
var registered = map[string]ErrorCode{}

func register(code string, status int, message string) ErrorCode {
	key := fmt.Sprintf("%s/%d", code, status)
	if _, ok := registered[key]; ok {
		panic("registryapi: error code registered twice: " + key)
	}
	c := ErrorCode{Code: code, Status: status, Message: message}
	registered[key] = c
	return c
}

// The error codes of the OCI Distribution Spec v1.1, plus UNAVAILABLE and
// UNKNOWN for failures outside the spec's table.
var (
	CodeBlobUnknown         = register("BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry")
	CodeBlobUploadInvalid   = register("BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid")
	CodeBlobUploadUnknown   = register("BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry")
	CodeDigestInvalid       = register("DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content")
	CodeManifestBlobUnknown = register("MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry")
	CodeManifestInvalid     = register("MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid")
	CodeManifestUnknown     = register("MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry")
	CodeNameInvalid         = register("NAME_INVALID", http.StatusBadRequest, "invalid repository name")
	CodeNameUnknown         = register("NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry")
	CodeSizeInvalid         = register("SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length")
	// CodeTooLarge is SIZE_INVALID served as 413: the body exceeds a limit.
	CodeTooLarge          = register("SIZE_INVALID", http.StatusRequestEntityTooLarge, "content exceeds the size limit")
	CodeUnauthorized      = register("UNAUTHORIZED", http.StatusUnauthorized, "authentication required")
	CodeDenied            = register("DENIED", http.StatusForbidden, "requested access to the resource is denied")
	CodeUnsupported       = register("UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported")
	CodeTooManyRequests   = register("TOO_MANY_REQUESTS", http.StatusTooManyRequests, "too many requests")
	CodeRangeInvalid      = register("RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable, "invalid content range")
	CodeUnavailable       = register("UNAVAILABLE", http.StatusServiceUnavailable, "origin unavailable")
	CodeUnknown           = register("UNKNOWN", http.StatusInternalServerError, "unknown error")
	CodeInvalidPagination = register("PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested")

	// codeNotFound answers paths outside the API (not a spec code).
	codeNotFound = register("NOT_FOUND", http.StatusNotFound, "no such endpoint")
)

// Error is an API error: a code, optional detail, optional response
// headers, and the cause (logged, never sent).
type Error struct {
	// Code is the OCI error code and status.
	Code ErrorCode
	// Detail is sent as the error's "detail" member when non-nil.
	Detail any
	// Header is added to the error response (e.g. Content-Range on a 416).
	Header http.Header
	// Err is the underlying cause, if any.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Code.Code, e.Err)
	}
	if e.Detail != nil {
		return fmt.Sprintf("%s: %v", e.Code.Code, e.Detail)
	}
	return e.Code.Code
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// apiErr builds an *Error with a detail.
func apiErr(c ErrorCode, detail any) *Error {
	return &Error{Code: c, Detail: detail}
}

// backendCodes maps Backend sentinels to codes, in the order they are tested.
var backendCodes = []struct {
	err  error
	code ErrorCode
}{
	{ErrBlobUnknown, CodeBlobUnknown},
	{ErrBlobUploadUnknown, CodeBlobUploadUnknown},
	{ErrManifestUnknown, CodeManifestUnknown},
	{ErrManifestBlobUnknown, CodeManifestBlobUnknown},
	{ErrNameUnknown, CodeNameUnknown},
	{ErrDigestInvalid, CodeDigestInvalid},
	{ErrSizeInvalid, CodeSizeInvalid},
	{ErrTooLarge, CodeTooLarge},
	{ErrUnsupported, CodeUnsupported},
	{ErrDenied, CodeDenied},
	{ErrUnavailable, CodeUnavailable},
}

// asAPIError maps any error to an *Error: an *Error stays itself, a Backend
// sentinel becomes its code, anything else is UNKNOWN.
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, bc := range backendCodes {
		if errors.Is(err, bc.err) {
			return &Error{Code: bc.code, Err: err}
		}
	}
	if isNoSpace(err) {
		return &Error{Code: CodeNoSpace, Detail: "no space left on device", Err: err}
	}
	return &Error{Code: CodeUnknown, Err: err}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError writes e as an OCI error body with its status. HEAD responses
// carry no body.
func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Code.Status)
		return
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{
		Code:    e.Code.Code,
		Message: e.Code.Message,
		Detail:  e.Detail,
	}}})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Code.Status)
	_, _ = w.Write(body)
}
