package agent

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/registryapi"
)

// Read-ahead: a client that got an image manifest pulls its layers a few
// at a time (containerd three), so in a rollout the origin read of layer
// k starts only when the first host reaches layer k, and the fleet waits
// for the origin in waves. When a manifest is served, the host tries the
// fetch lock of readAheadTries of the layers it lacks, picked at random,
// once each, without waiting. A layer whose lock it wins, and of which no
// host holds a complete copy, it reads from the origin now, as the
// group's origin reader (announced at once, the lock kept a while after
// the commit). A host reads at most one layer ahead, so a hundred hosts
// reading one manifest spread an image's layers over as many readers; a
// lock held by another host, or a layer present anywhere, is left alone.
// Nothing joins a swarm ahead of its client: every host still downloads
// only what its client asks for.
const (
	readAheadTries = 2
	// readAheadPlan bounds the lock request and the search for a
	// complete copy.
	readAheadPlan = 5 * time.Second
)

// ManifestServed starts the read-ahead of an image manifest's layers
// (registryapi.ManifestObserver).
func (r *registry) ManifestServed(ctx context.Context, repo string, m registryapi.Manifest) {
	if !r.readAhead || r.fetch.node == nil || r.fetch.locker == nil {
		return
	}
	layers := manifestLayers(m.Content)
	if len(layers) == 0 {
		return
	}
	var src source = storeSource{r.origin}
	if mr, ok, err := r.mirrors.route(ctx, repo); err != nil {
		return
	} else if ok {
		src = upstreamSource{mr}
	}
	r.fetch.readAhead(layers, src)
}

// manifestLayers returns the layer digests of an image manifest (none for
// an index or anything that does not parse).
func manifestLayers(body []byte) []digest.Digest {
	var doc struct {
		Manifests json.RawMessage `json:"manifests"`
		Layers    []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Manifests != nil {
		return nil
	}
	var out []digest.Digest
	for _, l := range doc.Layers {
		if l.Digest.Validate() == nil {
			out = append(out, l.Digest)
		}
	}
	return out
}

// readAhead tries the fetch locks of up to readAheadTries of digests that
// are neither cached nor being fetched here, and reads the first one won
// from the origin (see the comment on readAheadTries). It returns at once.
func (f *fetcher) readAhead(digests []digest.Digest, src source) {
	if f.reading.Load() > 0 || (f.yield != nil && f.yield()) || (f.slow != nil && f.slow()) {
		return // reading the origin already, the group's lock proxy, or on a slow link
	}
	var todo []digest.Digest
	for _, i := range rand.Perm(len(digests)) {
		d := digests[i]
		if _, err := f.cas.Stat(f.life, d); err == nil || f.cas.Writing(d) {
			continue
		}
		if todo = append(todo, d); len(todo) == readAheadTries {
			break
		}
	}
	if len(todo) == 0 {
		return
	}
	f.wg.Go(func() {
		for _, d := range todo {
			if f.readAheadOne(d, src) {
				return
			}
		}
	})
}

// readAheadOne reads d from the origin if this host wins its fetch lock
// at once and no host holds a complete copy; it reports whether it did.
func (f *fetcher) readAheadOne(d digest.Digest, src source) bool {
	ctx, cancel := context.WithTimeout(f.life, readAheadPlan)
	defer cancel()
	size, err := src.Stat(ctx, d)
	if err != nil {
		f.log.Debug("not reading ahead", "digest", d, "stat", err)
		return false
	}
	l, err := f.locker.Acquire(ctx, fetchLockName(d), locks.AcquireOptions{})
	if err != nil {
		f.log.Debug("not reading ahead", "digest", d, "lock", err)
		return false // held (someone reads it already), or no proxy now
	}
	release := func() { l.Release(context.WithoutCancel(ctx)) }
	if provs := f.completeSources(ctx, d, f.findProviders(ctx, d), true); len(provs) > 0 {
		f.log.Debug("not reading ahead: peers have it", "digest", d, "providers", len(provs))
		release()
		return false
	}
	w, err := f.cas.Create(f.life, d, size, cas.WriteOptions{State: cas.StateReplicated})
	if err != nil {
		release()
		if !errors.Is(err, cas.ErrExists) && !errors.Is(err, cas.ErrInProgress) {
			f.log.Warn("read ahead", "digest", d, "err", err)
		}
		return false
	}
	f.log.Debug("reading ahead from the origin", "digest", d, "size", size)
	f.wg.Add(1)
	go f.run(d, plan{size: size, lease: l}, w, src)
	return true
}
