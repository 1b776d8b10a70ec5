package registryapi

import (
	"fmt"
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// referrers serves GET /v2/<name>/referrers/<digest>[?artifactType=] as an
// OCI image index listing the manifests whose subject is the digest.
func (h *handler) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := blobDigest(rt)
	if err != nil {
		return err
	}
	all, err := h.b.Referrers(r.Context(), rt.name, d)
	if err != nil {
		return fmt.Errorf("list referrers of %s: %w", d, err)
	}
	q := r.URL.Query()
	list := make([]ocispec.Descriptor, 0, len(all))
	if q.Has("artifactType") {
		at := q.Get("artifactType")
		for _, desc := range all {
			if desc.ArtifactType == at {
				list = append(list, desc)
			}
		}
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	} else {
		list = append(list, all...)
	}
	index := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: list,
	}
	index.SchemaVersion = 2
	return writeJSON(w, r, ocispec.MediaTypeImageIndex, index)
}
