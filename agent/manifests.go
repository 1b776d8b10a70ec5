package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/agent/meta"
	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/registryapi"
)

// Tags and manifests: the object store is the authority (seen through the
// origin view, so this agent's unreplicated changes count); the metadata
// store remembers the last answers, served when the store is unreachable.

// resolve turns a tag or digest reference into a digest.
func (r *registry) resolve(ctx context.Context, repo, ref string) (digest.Digest, error) {
	if d, err := digest.Parse(ref); err == nil {
		return d, nil
	}
	b, err := r.origin.ReadSmall(ctx, objstore.TagKey(repo, ref), 1024)
	if err == nil {
		d, perr := digest.Parse(strings.TrimSpace(string(b)))
		if perr != nil {
			return "", fmt.Errorf("tag %s:%s: bad record in object store: %w", repo, ref, perr)
		}
		r.rememberTag(repo, ref, d)
		return d, nil
	}
	if errors.Is(err, objstore.ErrNotFound) {
		return "", fmt.Errorf("%w: %s:%s", registryapi.ErrManifestUnknown, repo, ref)
	}
	var last digest.Digest
	_ = r.meta.View(func(tx *meta.Tx) error {
		last, _ = tx.Tag(repo, ref)
		return nil
	})
	if last == "" {
		return "", apiErr(err, registryapi.ErrManifestUnknown)
	}
	r.log.Warn("object store unreachable, serving last known tag", "repo", repo, "tag", ref, "digest", last, "err", err)
	return last, nil
}

// rememberTag records the last answer for repo:tag, the fallback when the
// authority is unreachable. Resolving a tag is on the pull path, so the
// write transaction (an fsync) happens only when the answer changed.
func (r *registry) rememberTag(repo, tag string, d digest.Digest) {
	var known digest.Digest
	_ = r.meta.View(func(tx *meta.Tx) error { known, _ = tx.Tag(repo, tag); return nil })
	if known == d {
		return
	}
	if err := r.meta.Update(func(tx *meta.Tx) error { return tx.SetTag(repo, tag, d) }); err != nil {
		r.log.Warn("remember tag", "repo", repo, "tag", tag, "err", err)
	}
}

func (r *registry) GetManifest(ctx context.Context, repo, ref string) (registryapi.Manifest, error) {
	if m, ok, err := r.mirrors.route(ctx, repo); ok || err != nil {
		if err != nil {
			return registryapi.Manifest{}, err
		}
		return r.mirrorManifest(ctx, m, ref)
	}
	man, err := r.localManifest(ctx, repo, ref)
	for _, m := range r.fallbacks(repo) {
		if !errors.Is(err, registryapi.ErrManifestUnknown) {
			break
		}
		man, err = r.mirrorManifest(ctx, m, ref)
	}
	return man, err
}

// localManifest serves a manifest from the object store's records.
func (r *registry) localManifest(ctx context.Context, repo, ref string) (registryapi.Manifest, error) {
	d, err := r.resolve(ctx, repo, ref)
	if err != nil {
		return registryapi.Manifest{}, err
	}
	var rec meta.ManifestRecord
	var known, deleted bool
	_ = r.meta.View(func(tx *meta.Tx) error {
		rec, known = tx.Manifest(repo, d)
		deleted = tx.Deleted(repo, d)
		return nil
	})
	exists, err := r.origin.Exists(ctx, objstore.ManifestKey(repo, d))
	switch {
	case err != nil && !known:
		return registryapi.Manifest{}, apiErr(err, registryapi.ErrManifestUnknown)
	case err == nil && !exists && (deleted || r.fetch.node == nil || d.String() != ref):
		return registryapi.Manifest{}, fmt.Errorf("%w: %s@%s", registryapi.ErrManifestUnknown, repo, d)
	}
	// A manifest asked for by digest that the object store does not list
	// may still be on peers: its digest verifies it, whoever serves it.
	content, err := r.readBlob(ctx, d, maxManifestBytes)
	if err != nil {
		return registryapi.Manifest{}, apiErr(err, registryapi.ErrManifestUnknown)
	}
	mt := rec.MediaType
	if !known {
		mt = sniffMediaType(content)
		_ = r.meta.Update(func(tx *meta.Tx) error {
			return tx.PutManifest(repo, meta.ManifestRecord{Digest: d, MediaType: mt, Size: int64(len(content))})
		})
	}
	return registryapi.Manifest{Digest: d, MediaType: mt, Content: content}, nil
}

func (r *registry) PutManifest(ctx context.Context, repo string, m registryapi.ManifestPut) error {
	if err := r.refuseMirror(ctx, repo); err != nil {
		return err
	}
	state, err := r.storeBytes(ctx, m.Digest, m.MediaType, m.Content, cas.StateLocal)
	if err != nil {
		return err
	}
	var items []outbox.Item
	if _, queued := r.outbox.Latest(objstore.BlobKey(m.Digest)); state == cas.StateLocal || queued {
		items = append(items, outbox.Item{Key: objstore.BlobKey(m.Digest), Blob: m.Digest})
	}
	items = append(items, outbox.Item{Key: objstore.ManifestKey(repo, m.Digest), Data: []byte{}})
	if m.Subject != nil {
		ref, err := json.Marshal(m.Referrer)
		if err != nil {
			return fmt.Errorf("encode referrer: %w", err)
		}
		items = append(items, outbox.Item{Key: objstore.ReferrerKey(repo, m.Subject.Digest, m.Digest), Data: ref})
	}
	if m.Tag != "" {
		items = append(items, outbox.Item{Key: objstore.TagKey(repo, m.Tag), Data: []byte(m.Digest.String())})
	}
	var ticket outbox.Ticket
	err = r.meta.Update(func(tx *meta.Tx) error {
		rec := meta.ManifestRecord{Digest: m.Digest, MediaType: m.MediaType, Size: int64(len(m.Content)), Subject: m.Subject}
		if err := tx.PutManifest(repo, rec); err != nil {
			return err
		}
		if err := tx.SetDeleted(repo, m.Digest, false); err != nil {
			return err
		}
		if m.Tag != "" {
			if err := tx.SetTag(repo, m.Tag, m.Digest); err != nil {
				return err
			}
		}
		if m.Subject != nil {
			if err := tx.PutReferrer(repo, m.Subject.Digest, m.Referrer); err != nil {
				return err
			}
		}
		var err error
		ticket, err = r.outbox.EnqueueTx(tx.Bolt(), items...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record manifest %s@%s: %w", repo, m.Digest, err)
	}
	r.outbox.Notify()
	return r.awaitReplication(ctx, ticket)
}

func (r *registry) DeleteManifest(ctx context.Context, repo, ref string) error {
	if err := r.refuseMirror(ctx, repo); err != nil {
		return err
	}
	d, isDigest := digest.Parse(ref)
	if isDigest != nil {
		return r.deleteTag(ctx, repo, ref)
	}
	exists, err := r.origin.Exists(ctx, objstore.ManifestKey(repo, d))
	if err != nil {
		return apiErr(err, registryapi.ErrManifestUnknown)
	}
	if !exists {
		return fmt.Errorf("%w: %s@%s", registryapi.ErrManifestUnknown, repo, d)
	}
	items := []outbox.Item{{Key: objstore.ManifestKey(repo, d), Delete: true}}
	var subject *ocispec.Descriptor
	if content, err := r.readBlob(ctx, d, maxManifestBytes); err == nil {
		var m struct {
			Subject *ocispec.Descriptor `json:"subject"`
		}
		if json.Unmarshal(content, &m) == nil && m.Subject != nil {
			subject = m.Subject
			items = append(items, outbox.Item{Key: objstore.ReferrerKey(repo, subject.Digest, d), Delete: true})
		}
	}
	tags, err := r.tagsPointingAt(ctx, repo, d)
	if err != nil {
		return err
	}
	for _, t := range tags {
		items = append(items, outbox.Item{Key: objstore.TagKey(repo, t), Delete: true})
	}
	var ticket outbox.Ticket
	err = r.meta.Update(func(tx *meta.Tx) error {
		if err := tx.DeleteManifest(repo, d); err != nil {
			return err
		}
		if err := tx.SetDeleted(repo, d, true); err != nil {
			return err
		}
		for _, t := range tags {
			if err := tx.DeleteTag(repo, t); err != nil {
				return err
			}
		}
		if subject != nil {
			if err := tx.DeleteReferrer(repo, subject.Digest, d); err != nil {
				return err
			}
		}
		var err error
		ticket, err = r.outbox.EnqueueTx(tx.Bolt(), items...)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete manifest %s@%s: %w", repo, d, err)
	}
	r.outbox.Notify()
	return r.awaitReplication(ctx, ticket)
}

func (r *registry) deleteTag(ctx context.Context, repo, tag string) error {
	exists, err := r.origin.Exists(ctx, objstore.TagKey(repo, tag))
	if err != nil {
		return apiErr(err, registryapi.ErrManifestUnknown)
	}
	if !exists {
		return fmt.Errorf("%w: %s:%s", registryapi.ErrManifestUnknown, repo, tag)
	}
	var ticket outbox.Ticket
	err = r.meta.Update(func(tx *meta.Tx) error {
		if err := tx.DeleteTag(repo, tag); err != nil {
			return err
		}
		var err error
		ticket, err = r.outbox.EnqueueTx(tx.Bolt(), outbox.Item{Key: objstore.TagKey(repo, tag), Delete: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete tag %s:%s: %w", repo, tag, err)
	}
	r.outbox.Notify()
	return r.awaitReplication(ctx, ticket)
}

// tagsPointingAt lists repo's tags whose record names d.
func (r *registry) tagsPointingAt(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	tags, err := r.Tags(ctx, repo)
	if err != nil && !errors.Is(err, registryapi.ErrNameUnknown) {
		return nil, err
	}
	var out []string
	for _, t := range tags {
		b, err := r.origin.ReadSmall(ctx, objstore.TagKey(repo, t), 1024)
		if err == nil && strings.TrimSpace(string(b)) == d.String() {
			out = append(out, t)
		}
	}
	return out, nil
}

func (r *registry) Tags(ctx context.Context, repo string) ([]string, error) {
	if m, ok, err := r.mirrors.route(ctx, repo); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: listing tags of upstream %s", registryapi.ErrUnsupported, m.name)
	}
	prefix := objstore.TagsPrefix(repo)
	keys, err := r.origin.List(ctx, prefix)
	if err != nil {
		var tags []string
		var ok bool
		_ = r.meta.View(func(tx *meta.Tx) error { tags, ok = tx.Tags(repo); return nil })
		if !ok {
			return nil, apiErr(err, registryapi.ErrNameUnknown)
		}
		return tags, nil
	}
	tags := trimKeys(keys, prefix)
	if len(tags) > 0 {
		return tags, nil
	}
	repos, err := r.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(repos, repo) {
		return nil, fmt.Errorf("%w: %s", registryapi.ErrNameUnknown, repo)
	}
	return []string{}, nil
}

func (r *registry) Repositories(ctx context.Context) ([]string, error) {
	keys, err := r.origin.List(ctx, objstore.RepositoriesPrefix())
	if err != nil {
		return nil, apiErr(err, registryapi.ErrNameUnknown)
	}
	return repoNames(keys), nil
}

func (r *registry) Referrers(ctx context.Context, repo string, d digest.Digest) ([]ocispec.Descriptor, error) {
	if m, ok, err := r.mirrors.route(ctx, repo); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: referrers of upstream %s", registryapi.ErrUnsupported, m.name)
	}
	prefix := objstore.ReferrersPrefix(repo, d)
	keys, err := r.origin.List(ctx, prefix)
	if err != nil {
		return nil, apiErr(err, registryapi.ErrNameUnknown)
	}
	out := []ocispec.Descriptor{}
	for _, k := range keys {
		b, err := r.origin.ReadSmall(ctx, k, 1<<20)
		if err != nil {
			continue // deleted meanwhile
		}
		var desc ocispec.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil || desc.Digest == "" {
			r.log.Warn("unreadable referrer record", "key", k, "err", err)
			continue
		}
		out = append(out, desc)
	}
	return out, nil
}
