package registryapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
)

// page applies n/last pagination to a lexically sorted list. It returns the
// page and whether more entries follow it.
func page(all []string, r *http.Request) ([]string, bool, error) {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if !q.Has("n") {
		return all, false, nil
	}
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return nil, false, apiErr(CodeInvalidPagination, map[string]string{"n": truncate(q.Get("n"), 50)})
	}
	if n < len(all) {
		return all[:n], n > 0, nil
	}
	return all, false, nil
}

// nextLink sets the Link header to the page after the one ending at last.
func nextLink(w http.ResponseWriter, r *http.Request, path, last string) {
	n := r.URL.Query().Get("n")
	w.Header().Set("Link", fmt.Sprintf(`<%s?n=%s&last=%s>; rel="next"`, path, url.QueryEscape(n), url.QueryEscape(last)))
}

// writeJSON writes v as a JSON response with the given content type.
func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// tagList is the body of a tags list response.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// tags serves GET /v2/<name>/tags/list[?n=&last=].
func (h *handler) tags(w http.ResponseWriter, r *http.Request, rt route) error {
	all, err := h.b.Tags(r.Context(), rt.name)
	if err != nil {
		return fmt.Errorf("list tags: %w", err)
	}
	list, more, err := page(all, r)
	if err != nil {
		return err
	}
	if more {
		nextLink(w, r, "/v2/"+rt.name+"/tags/list", list[len(list)-1])
	}
	if list == nil {
		list = []string{}
	}
	return writeJSON(w, r, "application/json", tagList{Name: rt.name, Tags: list})
}

// catalogList is the body of a catalog response.
type catalogList struct {
	Repositories []string `json:"repositories"`
}

// catalog serves GET /v2/_catalog[?n=&last=].
func (h *handler) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	all, err := h.b.Repositories(r.Context())
	if err != nil {
		return fmt.Errorf("list repositories: %w", err)
	}
	list, more, err := page(all, r)
	if err != nil {
		return err
	}
	if more {
		nextLink(w, r, "/v2/_catalog", list[len(list)-1])
	}
	if list == nil {
		list = []string{}
	}
	return writeJSON(w, r, "application/json", catalogList{Repositories: list})
}
