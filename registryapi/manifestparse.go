package registryapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the handler accepts.
const (
	MediaTypeOCIManifest    = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex       = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

func isIndexMediaType(mt string) bool {
	return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList
}

// nondistributable reports whether a layer may be absent from the registry
// (OCI non-distributable and Docker foreign layers).
func nondistributable(mt string) bool {
	return strings.Contains(mt, ".nondistributable.") || strings.Contains(mt, ".foreign.")
}

// manifestDoc is the union of the fields of the accepted manifest types
// that the handler inspects.
type manifestDoc struct {
	SchemaVersion *int                  `json:"schemaVersion"`
	MediaType     string                `json:"mediaType"`
	ArtifactType  string                `json:"artifactType"`
	Config        *ocispec.Descriptor   `json:"config"`
	Layers        []ocispec.Descriptor  `json:"layers"`
	Manifests     *[]ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor   `json:"subject"`
	Annotations   map[string]string     `json:"annotations"`
}

// invalidManifest builds a MANIFEST_INVALID error.
func invalidManifest(format string, args ...any) *Error {
	return apiErr(CodeManifestInvalid, fmt.Sprintf(format, args...))
}

// parseManifest validates a manifest body sent with the given Content-Type
// and returns everything of ManifestPut except Tag, Digest and
// Referrer.Digest, which depend on the reference it is pushed to.
func parseManifest(body []byte, contentType string) (ManifestPut, error) {
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return ManifestPut{}, &Error{Code: CodeManifestInvalid, Detail: "invalid JSON", Err: err}
	}
	if dec.More() {
		return ManifestPut{}, invalidManifest("trailing data after JSON document")
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return ManifestPut{}, invalidManifest("schemaVersion must be 2")
	}
	ct := ""
	if contentType != "" {
		parsed, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return ManifestPut{}, invalidManifest("invalid Content-Type %q", truncate(contentType, 100))
		}
		ct = parsed
	}
	mt := doc.MediaType
	switch {
	case mt == "" && ct == "":
		return ManifestPut{}, invalidManifest("no mediaType field and no Content-Type")
	case mt == "":
		mt = ct
	case ct != "" && ct != mt:
		return ManifestPut{}, invalidManifest("mediaType %q disagrees with Content-Type %q", truncate(mt, 100), truncate(ct, 100))
	}
	put := ManifestPut{MediaType: mt, Content: body}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if doc.Config == nil {
			return ManifestPut{}, invalidManifest("image manifest has no config")
		}
		if doc.Manifests != nil {
			return ManifestPut{}, invalidManifest("image manifest has a manifests field")
		}
		if mt == MediaTypeDockerManifest && doc.MediaType == "" {
			return ManifestPut{}, invalidManifest("docker manifest needs a mediaType field")
		}
		if err := checkDescriptor("config", *doc.Config); err != nil {
			return ManifestPut{}, err
		}
		put.References = append(put.References, *doc.Config)
		for i, l := range doc.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return ManifestPut{}, err
			}
			if !nondistributable(l.MediaType) {
				put.References = append(put.References, l)
			}
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if doc.Config != nil || doc.Layers != nil {
			return ManifestPut{}, invalidManifest("index has config or layers")
		}
		if doc.Manifests == nil && mt == MediaTypeDockerList {
			return ManifestPut{}, invalidManifest("manifest list has no manifests")
		}
		if doc.Manifests != nil {
			for i, m := range *doc.Manifests {
				if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), m); err != nil {
					return ManifestPut{}, err
				}
				put.References = append(put.References, m)
			}
		}
	default:
		return ManifestPut{}, invalidManifest("unsupported media type %q", truncate(mt, 100))
	}
	if doc.Subject != nil {
		if err := checkDescriptor("subject", *doc.Subject); err != nil {
			return ManifestPut{}, err
		}
		subject := *doc.Subject
		put.Subject = &subject
	}
	put.Referrer = ocispec.Descriptor{
		MediaType:    mt,
		Size:         int64(len(body)),
		ArtifactType: doc.ArtifactType,
		Annotations:  doc.Annotations,
	}
	if put.Referrer.ArtifactType == "" && doc.Config != nil && mt == MediaTypeOCIManifest {
		put.Referrer.ArtifactType = doc.Config.MediaType
	}
	return put, nil
}

// checkDescriptor validates a descriptor's media type, digest, size and
// embedded data.
func checkDescriptor(field string, d ocispec.Descriptor) error {
	if d.MediaType == "" {
		return invalidManifest("%s: missing mediaType", field)
	}
	if _, err := ParseDigest(d.Digest.String()); err != nil {
		return invalidManifest("%s: invalid digest %q", field, truncate(d.Digest.String(), 200))
	}
	if d.Size < 0 {
		return invalidManifest("%s: negative size", field)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
			return invalidManifest("%s: data does not match digest and size", field)
		}
	}
	return nil
}
