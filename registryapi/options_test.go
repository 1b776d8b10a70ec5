package registryapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

// failingBackend is a memory backend whose Tags fails with err.
type failingBackend struct {
	*memory.Backend
	err error
}

func (b *failingBackend) Tags(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("list: %w", b.err)
}

// TestBackendErrors maps Backend sentinels to codes and statuses.
func TestBackendErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{registryapi.ErrUnavailable, 503, "UNAVAILABLE"},
		{registryapi.ErrDenied, 403, "DENIED"},
		{registryapi.ErrTooLarge, 413, "SIZE_INVALID"},
		{registryapi.ErrUnsupported, 405, "UNSUPPORTED"},
		{registryapi.ErrNameUnknown, 404, "NAME_UNKNOWN"},
		{errors.New("disk on fire"), 500, "UNKNOWN"},
	} {
		t.Run(c.code, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(registryapi.NewHandler(&failingBackend{Backend: memory.New(), err: c.err}, registryapi.Options{}))
			t.Cleanup(srv.Close)
			resp, err := srv.Client().Get(srv.URL + "/v2/a/tags/list")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || errorCode(body) != c.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
			if strings.Contains(string(body), "disk on fire") {
				t.Fatal("internal error text leaked to the client")
			}
		})
	}
}

// TestMaxUploadBytes refuses uploads past the limit, with or without a
// declared length.
func TestMaxUploadBytes(t *testing.T) {
	t.Parallel()
	opts := registryapi.DefaultOptions()
	opts.MaxUploadBytes = 8
	srv := httptest.NewServer(registryapi.NewHandler(memory.New(), opts))
	t.Cleanup(srv.Close)
	do := func(method, path string, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, errorCode(b)
	}
	big := "0123456789"
	if resp, code := do("POST", "/v2/a/blobs/uploads/?digest="+digest.FromString(big).String(), strings.NewReader(big)); resp.StatusCode != 413 || code != "SIZE_INVALID" {
		t.Fatalf("monolithic: %d %s", resp.StatusCode, code)
	}
	resp, _ := do("POST", "/v2/a/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp, code := do("PATCH", loc, struct{ io.Reader }{strings.NewReader(big)}); resp.StatusCode != 413 || code != "SIZE_INVALID" {
		t.Fatalf("streamed: %d %s", resp.StatusCode, code)
	}
	small := "01234567"
	resp, _ = do("POST", "/v2/a/blobs/uploads/", nil)
	loc = resp.Header.Get("Location")
	if resp, code := do("PUT", loc+"?digest="+digest.FromString(small).String(), strings.NewReader(small)); resp.StatusCode != 201 {
		t.Fatalf("at the limit: %d %s", resp.StatusCode, code)
	}
}

// TestTagsPagination follows Link headers through the tag list.
func TestTagsPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tag := range []string{"a", "b", "c"} {
		f.mustStatus(t, "PUT", "/v2/"+fxRepo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", fxManifest, http.StatusCreated)
	}
	var pages []string
	next := "/v2/" + fxRepo + "/tags/list?n=2"
	for next != "" {
		resp := f.do(t, "GET", next, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		pages = append(pages, strings.TrimSpace(string(body)))
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			next = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
		}
		if len(pages) > 5 {
			t.Fatal("pagination does not end")
		}
	}
	want := []string{
		`{"name":"library/alpine","tags":["a","b"]}`,
		`{"name":"library/alpine","tags":["c","latest"]}`,
	}
	if strings.Join(pages, "\n") != strings.Join(want, "\n") {
		t.Fatalf("pages:\n%s\nwant:\n%s", strings.Join(pages, "\n"), strings.Join(want, "\n"))
	}
}
