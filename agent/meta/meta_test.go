package meta

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.etcd.io/bbolt"
)

func open(t *testing.T) *Store {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRepositoryRecords(t *testing.T) {
	t.Parallel()
	s := open(t)
	m1, m2 := digest.FromString("m1"), digest.FromString("m2")
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: m1, Size: 2}
	ref := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: m2, Size: 2, ArtifactType: "application/x-sig"}
	err := s.Update(func(tx *Tx) error {
		for _, step := range []error{
			tx.PutManifest("a/b", ManifestRecord{Digest: m1, MediaType: ocispec.MediaTypeImageManifest, Size: 2}),
			tx.PutManifest("a/b", ManifestRecord{Digest: m2, MediaType: ocispec.MediaTypeImageManifest, Size: 2, Subject: &subject}),
			tx.SetTag("a/b", "v1", m1), tx.SetTag("a/b", "latest", m1), tx.SetTag("a/b", "v2", m2),
			tx.PutReferrer("a/b", m1, ref),
			tx.PutManifest("a", ManifestRecord{Digest: m1}),
		} {
			if step != nil {
				return step
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		if tags, ok := tx.Tags("a/b"); !ok || !slices.Equal(tags, []string{"latest", "v1", "v2"}) {
			t.Errorf("tags %v %v", tags, ok)
		}
		if tags := tx.TagsFor("a/b", m1); !slices.Equal(tags, []string{"latest", "v1"}) {
			t.Errorf("tags for m1 %v", tags)
		}
		if d, ok := tx.Tag("a/b", "v2"); !ok || d != m2 {
			t.Errorf("tag v2 = %s %v", d, ok)
		}
		if rec, ok := tx.Manifest("a/b", m2); !ok || rec.Subject == nil || rec.Subject.Digest != m1 {
			t.Errorf("manifest m2 = %+v %v", rec, ok)
		}
		if refs, err := tx.Referrers("a/b", m1); err != nil || len(refs) != 1 || refs[0].ArtifactType != "application/x-sig" {
			t.Errorf("referrers %v %v", refs, err)
		}
		if _, ok := tx.Tags("nope"); ok {
			t.Error("unknown repository reported as existing")
		}
		if repos := tx.Repositories(); !slices.Equal(repos, []string{"a", "a/b"}) {
			t.Errorf("repositories %v", repos)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		if err := tx.DeleteTag("a/b", "v1"); err != nil {
			return err
		}
		if err := tx.DeleteReferrer("a/b", m1, m2); err != nil {
			return err
		}
		return tx.DeleteManifest("a/b", m2)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx *Tx) error {
		if _, ok := tx.Tag("a/b", "v1"); ok {
			t.Error("deleted tag still resolves")
		}
		if _, ok := tx.Manifest("a/b", m2); ok {
			t.Error("deleted manifest still recorded")
		}
		if refs, _ := tx.Referrers("a/b", m1); len(refs) != 0 {
			t.Errorf("deleted referrer still listed: %v", refs)
		}
		return nil
	})
}
