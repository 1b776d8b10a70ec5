// Package meta keeps the agent's repository metadata in bbolt: which
// manifests each repository holds, its tags, and the referrers of each
// subject. Blob bytes live in cas; this package records names only.
//
// Bucket layout:
//
//	repos/
//	└── <repository>/
//	    ├── manifests/  <digest> → JSON ManifestRecord
//	    ├── tags/       <tag>    → <digest>
//	    ├── deleted/    <digest> → "" (manifests deleted here: not served from peers)
//	    └── referrers/
//	        └── <subject digest>/  <digest> → JSON descriptor
//
// All changes happen in an Update transaction, whose bbolt transaction the
// caller can share (e.g. with the replication outbox) so that metadata and
// the work it implies commit together.
package meta

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"
)

var bucketRepos = []byte("repos")

var (
	bucketManifests = []byte("manifests")
	bucketTags      = []byte("tags")
	bucketReferrers = []byte("referrers")
	bucketDeleted   = []byte("deleted")
)

// ManifestRecord describes a manifest a repository holds.
type ManifestRecord struct {
	Digest    digest.Digest       `json:"digest"`
	MediaType string              `json:"mediaType"`
	Size      int64               `json:"size"`
	Subject   *ocispec.Descriptor `json:"subject,omitempty"`
}

// Store is the metadata store over a bbolt DB the caller owns.
type Store struct {
	db *bbolt.DB
}

// New prepares the buckets in db.
func New(db *bbolt.DB) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRepos)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("meta: init: %w", err)
	}
	return &Store{db: db}, nil
}

// Tx is a metadata transaction.
type Tx struct {
	tx *bbolt.Tx
}

// Bolt returns the underlying bbolt transaction, to enqueue related work in it.
func (t *Tx) Bolt() *bbolt.Tx { return t.tx }

// Update runs fn in a read-write transaction.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bbolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// repo returns the repository bucket and, with create, makes it.
func (t *Tx) repo(name string, create bool) (*bbolt.Bucket, error) {
	root := t.tx.Bucket(bucketRepos)
	if b := root.Bucket([]byte(name)); b != nil || !create {
		return b, nil
	}
	b, err := root.CreateBucket([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("meta: create repo %s: %w", name, err)
	}
	for _, sub := range [][]byte{bucketManifests, bucketTags, bucketReferrers} {
		if _, err := b.CreateBucket(sub); err != nil {
			return nil, fmt.Errorf("meta: create repo %s: %w", name, err)
		}
	}
	return b, nil
}

func (t *Tx) sub(repo string, name []byte, create bool) (*bbolt.Bucket, error) {
	b, err := t.repo(repo, create)
	if b == nil || err != nil {
		return nil, err
	}
	return b.Bucket(name), nil
}

// PutManifest records that repo holds the manifest.
func (t *Tx) PutManifest(repo string, m ManifestRecord) error {
	b, err := t.sub(repo, bucketManifests, true)
	if err != nil {
		return err
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("meta: encode manifest: %w", err)
	}
	return b.Put([]byte(m.Digest), v)
}

// Manifest returns the record of a manifest in repo.
func (t *Tx) Manifest(repo string, d digest.Digest) (ManifestRecord, bool) {
	b, _ := t.sub(repo, bucketManifests, false)
	if b == nil {
		return ManifestRecord{}, false
	}
	v := b.Get([]byte(d))
	if v == nil {
		return ManifestRecord{}, false
	}
	var m ManifestRecord
	if err := json.Unmarshal(v, &m); err != nil {
		return ManifestRecord{}, false
	}
	return m, true
}

// DeleteManifest removes a manifest record from repo.
func (t *Tx) DeleteManifest(repo string, d digest.Digest) error {
	b, _ := t.sub(repo, bucketManifests, false)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(d))
}

// SetDeleted records (or, with deleted false, clears) that manifest d was
// deleted from repo through this agent.
func (t *Tx) SetDeleted(repo string, d digest.Digest, deleted bool) error {
	b, err := t.repo(repo, true)
	if err != nil {
		return err
	}
	db, err := b.CreateBucketIfNotExists(bucketDeleted)
	if err != nil {
		return fmt.Errorf("meta: deleted of %s: %w", repo, err)
	}
	if deleted {
		return db.Put([]byte(d), nil)
	}
	return db.Delete([]byte(d))
}

// Deleted reports whether manifest d was deleted from repo through this agent.
func (t *Tx) Deleted(repo string, d digest.Digest) bool {
	b, _ := t.repo(repo, false)
	if b == nil {
		return false
	}
	db := b.Bucket(bucketDeleted)
	return db != nil && db.Get([]byte(d)) != nil
}

// SetTag points repo:tag at d.
func (t *Tx) SetTag(repo, tag string, d digest.Digest) error {
	b, err := t.sub(repo, bucketTags, true)
	if err != nil {
		return err
	}
	return b.Put([]byte(tag), []byte(d))
}

// Tag resolves repo:tag.
func (t *Tx) Tag(repo, tag string) (digest.Digest, bool) {
	b, _ := t.sub(repo, bucketTags, false)
	if b == nil {
		return "", false
	}
	v := b.Get([]byte(tag))
	return digest.Digest(v), v != nil
}

// DeleteTag removes repo:tag.
func (t *Tx) DeleteTag(repo, tag string) error {
	b, _ := t.sub(repo, bucketTags, false)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(tag))
}

// Tags lists repo's tags in lexical order, and whether the repository exists.
func (t *Tx) Tags(repo string) ([]string, bool) {
	b, _ := t.repo(repo, false)
	if b == nil {
		return nil, false
	}
	var tags []string
	_ = b.Bucket(bucketTags).ForEach(func(k, _ []byte) error {
		tags = append(tags, string(k))
		return nil
	})
	return tags, true
}

// TagsFor lists the tags of repo that point at d.
func (t *Tx) TagsFor(repo string, d digest.Digest) []string {
	b, _ := t.sub(repo, bucketTags, false)
	if b == nil {
		return nil
	}
	var tags []string
	_ = b.ForEach(func(k, v []byte) error {
		if string(v) == string(d) {
			tags = append(tags, string(k))
		}
		return nil
	})
	return tags
}

// PutReferrer records desc as a referrer of subject in repo.
func (t *Tx) PutReferrer(repo string, subject digest.Digest, desc ocispec.Descriptor) error {
	b, err := t.sub(repo, bucketReferrers, true)
	if err != nil {
		return err
	}
	sb, err := b.CreateBucketIfNotExists([]byte(subject))
	if err != nil {
		return fmt.Errorf("meta: referrers of %s: %w", subject, err)
	}
	v, err := json.Marshal(desc)
	if err != nil {
		return fmt.Errorf("meta: encode referrer: %w", err)
	}
	return sb.Put([]byte(desc.Digest), v)
}

// DeleteReferrer removes d from the referrers of subject.
func (t *Tx) DeleteReferrer(repo string, subject, d digest.Digest) error {
	b, _ := t.sub(repo, bucketReferrers, false)
	if b == nil {
		return nil
	}
	sb := b.Bucket([]byte(subject))
	if sb == nil {
		return nil
	}
	return sb.Delete([]byte(d))
}

// Referrers lists the referrers of subject recorded in repo.
func (t *Tx) Referrers(repo string, subject digest.Digest) ([]ocispec.Descriptor, error) {
	b, _ := t.sub(repo, bucketReferrers, false)
	if b == nil {
		return nil, nil
	}
	sb := b.Bucket([]byte(subject))
	if sb == nil {
		return nil, nil
	}
	var out []ocispec.Descriptor
	err := sb.ForEach(func(_, v []byte) error {
		var d ocispec.Descriptor
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("meta: decode referrer: %w", err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// Repositories lists repository names in lexical order.
func (t *Tx) Repositories() []string {
	var out []string
	_ = t.tx.Bucket(bucketRepos).ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	slices.Sort(out)
	return out
}
