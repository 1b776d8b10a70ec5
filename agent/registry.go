package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/agent/meta"
	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/registryapi"
)

// maxManifestBytes bounds manifests read back from the cache or origin.
const maxManifestBytes = 4 << 20

// registry implements registryapi.Backend over the cache, the metadata
// store, the origin view and the replication outbox.
type registry struct {
	cas      *cas.Store
	meta     *meta.Store
	origin   *origin
	outbox   *outbox.Outbox
	fetch    *fetcher
	mirrors  upstreams
	fallback []mirrorRoute // registry:// origins, after the object stores
	syncPush bool
	// readAhead starts origin reads of a served manifest's layers
	// (readahead.go).
	readAhead bool
	log       *slog.Logger
}

var (
	_ registryapi.Backend          = (*registry)(nil)
	_ registryapi.ManifestObserver = (*registry)(nil)
)

// apiErr maps store errors to the errors registryapi understands.
func apiErr(err error, notFound error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, objstore.ErrNotFound), errors.Is(err, cas.ErrNotFound):
		return fmt.Errorf("%w: %v", notFound, err)
	case errors.Is(err, objstore.ErrUnavailable):
		return fmt.Errorf("%w: %v", registryapi.ErrUnavailable, err)
	}
	return err
}

func (r *registry) StatBlob(ctx context.Context, repo string, d digest.Digest) (ocispec.Descriptor, error) {
	if m, ok, err := r.mirrors.route(ctx, repo); ok || err != nil {
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		return r.mirrorStatBlob(ctx, m, d)
	}
	if info, err := r.cas.Stat(ctx, d); err == nil {
		return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: info.Size}, nil
	}
	size, err := r.origin.Stat(ctx, objstore.BlobKey(d))
	if err != nil {
		err = apiErr(err, registryapi.ErrBlobUnknown)
		for _, m := range r.fallbacks(repo) {
			if !errors.Is(err, registryapi.ErrBlobUnknown) {
				break
			}
			var desc ocispec.Descriptor
			if desc, err = r.mirrorStatBlob(ctx, m, d); err == nil {
				return desc, nil
			}
		}
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: size}, nil
}

func (r *registry) GetBlob(ctx context.Context, repo string, d digest.Digest) (registryapi.Blob, error) {
	if m, ok, err := r.mirrors.route(ctx, repo); ok || err != nil {
		if err != nil {
			return registryapi.Blob{}, err
		}
		return r.mirrorGetBlob(ctx, m, d)
	}
	if f, info, verified, err := openForServe(ctx, r.cas, r.log, d); err == nil {
		// Blobs are read front to back: a larger readahead keeps sendfile
		// from a cold page cache near the disk's speed.
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
		return registryapi.Blob{Size: info.Size, Content: f, Verified: verified}, nil
	}
	fl, err := newRefollower(ctx, d, func(ctx context.Context) (*cas.Follower, error) {
		return r.fetch.Follow(ctx, d, storeSource{r.origin})
	})
	if err != nil {
		err = apiErr(err, registryapi.ErrBlobUnknown)
		for _, m := range r.fallbacks(repo) {
			if !errors.Is(err, registryapi.ErrBlobUnknown) {
				break
			}
			var b registryapi.Blob
			if b, err = r.mirrorGetBlob(ctx, m, d); err == nil {
				return b, nil
			}
		}
		return registryapi.Blob{}, err
	}
	return registryapi.Blob{Size: fl.Size(), Content: fl, Verified: fl.Verified}, nil
}

func (r *registry) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := r.refuseMirror(ctx, repo); err != nil {
		return err
	}
	if _, err := r.StatBlob(ctx, repo, d); err != nil {
		return err
	}
	if err := r.cas.Delete(ctx, d); err != nil && !errors.Is(err, cas.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	return r.enqueue(ctx, outbox.Item{Key: objstore.BlobKey(d), Delete: true})
}

func (r *registry) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (ocispec.Descriptor, error) {
	if err := r.refuseMirror(ctx, repo); err != nil {
		return ocispec.Descriptor{}, err
	}
	return r.StatBlob(ctx, repo, d)
}

// refuseMirror refuses a write to a mirrored repository.
func (r *registry) refuseMirror(ctx context.Context, repo string) error {
	m, ok, err := r.mirrors.route(ctx, repo)
	switch {
	case err != nil:
		return err
	case ok:
		return errReadOnly(m)
	}
	return nil
}

// enqueue queues replication work outside a metadata transaction.
func (r *registry) enqueue(ctx context.Context, items ...outbox.Item) error {
	t, err := r.outbox.Enqueue(ctx, items...)
	if err != nil {
		return fmt.Errorf("queue replication: %w", err)
	}
	return r.awaitReplication(ctx, t)
}

func (r *registry) awaitReplication(ctx context.Context, t outbox.Ticket) error {
	if !r.syncPush {
		return nil
	}
	if err := r.outbox.Wait(ctx, t); err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	return nil
}

func (r *registry) StartUpload(ctx context.Context, repo string) (registryapi.Upload, error) {
	if err := r.refuseMirror(ctx, repo); err != nil {
		return nil, err
	}
	u, err := r.cas.NewUpload(ctx)
	if err != nil {
		return nil, err
	}
	return &upload{u: u, r: r}, nil
}

func (r *registry) GetUpload(ctx context.Context, repo, id string) (registryapi.Upload, error) {
	u, err := r.cas.ResumeUpload(ctx, id)
	if err != nil {
		if errors.Is(err, cas.ErrUploadUnknown) {
			return nil, fmt.Errorf("%w: %s", registryapi.ErrBlobUploadUnknown, id)
		}
		return nil, err
	}
	return &upload{u: u, r: r}, nil
}

// upload adapts a cas upload to registryapi.Upload: a committed upload is
// queued for replication before the client hears 201.
type upload struct {
	u *cas.Upload
	r *registry
}

func (u *upload) ID() string  { return u.u.ID() }
func (u *upload) Size() int64 { return u.u.Size() }
func (u *upload) Append(ctx context.Context, rd io.Reader) (int64, error) {
	return u.u.Append(ctx, rd)
}
func (u *upload) Cancel(ctx context.Context) error { return u.u.Cancel(ctx) }

func (u *upload) Commit(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	info, err := u.u.Commit(ctx, d, cas.WriteOptions{State: cas.StateLocal})
	if err != nil {
		if errors.Is(err, cas.ErrDigestMismatch) {
			return ocispec.Descriptor{}, fmt.Errorf("%w: %v", registryapi.ErrDigestInvalid, err)
		}
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: info.Size}
	if info.State == cas.StateReplicated {
		if _, queued := u.r.outbox.Latest(objstore.BlobKey(d)); !queued {
			return desc, nil
		}
	}
	return desc, u.r.enqueue(ctx, outbox.Item{Key: objstore.BlobKey(d), Blob: d})
}

// storeBytes commits small content (a manifest) to the cache as local content.
func (r *registry) storeBytes(ctx context.Context, d digest.Digest, mediaType string, b []byte, state cas.State) (cas.State, error) {
	w, err := r.cas.Create(ctx, d, int64(len(b)), cas.WriteOptions{MediaType: mediaType, State: state})
	switch {
	case errors.Is(err, cas.ErrExists):
		info, err := r.cas.Stat(ctx, d)
		return info.State, err
	case errors.Is(err, cas.ErrInProgress):
		fl, err := r.cas.Follow(ctx, d)
		if err != nil {
			return 0, err
		}
		defer fl.Close()
		return cas.StateReplicated, fl.Wait(ctx)
	case err != nil:
		return 0, err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort(err)
		return 0, fmt.Errorf("store %s: %w", d, err)
	}
	if _, err := w.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store %s: %w", d, err)
	}
	return state, nil
}

// readBlob reads a small blob whole, from the cache or through a fetch.
func (r *registry) readBlob(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	b, err := r.GetBlob(ctx, "", d)
	if err != nil {
		return nil, err
	}
	defer b.Content.Close()
	if b.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d", d, b.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(b.Content, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d, err)
	}
	if b.Verified != nil {
		if err := b.Verified(ctx); err != nil {
			return nil, err
		}
	}
	if d.Algorithm().Available() && d.Algorithm().FromBytes(data) != d {
		return nil, fmt.Errorf("read %s: %w", d, cas.ErrDigestMismatch)
	}
	return data, nil
}

// sniffMediaType finds a manifest's media type in its JSON.
func sniffMediaType(b []byte) string {
	var m struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
		Config    json.RawMessage   `json:"config"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ocispec.MediaTypeImageManifest
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	}
	return ocispec.MediaTypeImageManifest
}

// repoNames turns keys under repositories/ into sorted unique names.
func repoNames(keys []string) []string {
	var out []string
	for _, k := range keys {
		if name, ok := keyRepoName(k); ok && (len(out) == 0 || out[len(out)-1] != name) {
			out = append(out, name)
		}
	}
	return dedupSorted(out)
}

func dedupSorted(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func trimKeys(keys []string, prefix string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	return out
}
