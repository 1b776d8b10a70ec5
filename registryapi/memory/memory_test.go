package memory_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUploadCommitAndRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memory.New()
	up, err := b.StartUpload(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []string{"hello, ", "world"} {
		if _, err := up.Append(ctx, strings.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if up.Size() != 12 {
		t.Fatalf("size %d", up.Size())
	}
	if _, err := up.Commit(ctx, digest.FromString("wrong")); !errors.Is(err, registryapi.ErrDigestInvalid) {
		t.Fatalf("commit with wrong digest: %v", err)
	}
	d := digest.FromString("hello, world")
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatalf("commit after a failed commit: %v", err)
	}
	if _, err := b.GetUpload(ctx, "a/b", up.ID()); !errors.Is(err, registryapi.ErrBlobUploadUnknown) {
		t.Fatalf("committed upload still live: %v", err)
	}
	blob, err := b.GetBlob(ctx, "a/b", d)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Content.Close()
	got, _ := io.ReadAll(blob.Content)
	if string(got) != "hello, world" || blob.Size != 12 {
		t.Fatalf("blob %q size %d", got, blob.Size)
	}
	if _, err := b.StatBlob(ctx, "other", d); !errors.Is(err, registryapi.ErrBlobUnknown) {
		t.Fatalf("blob visible in another repository: %v", err)
	}
	if _, err := b.MountBlob(ctx, "other", "a/b", d); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteBlob(ctx, "a/b", d); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StatBlob(ctx, "other", d); err != nil {
		t.Fatalf("mounted blob lost when the source deleted it: %v", err)
	}
}

func TestManifestsTagsReferrers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memory.New()
	if _, err := b.Tags(ctx, "r"); !errors.Is(err, registryapi.ErrNameUnknown) {
		t.Fatalf("tags of unknown repo: %v", err)
	}
	subject := digest.FromString("subject")
	m := registryapi.ManifestPut{Tag: "v1", Digest: digest.FromString("m"), MediaType: ocispec.MediaTypeImageManifest, Content: []byte("m")}
	ref := registryapi.ManifestPut{Digest: digest.FromString("sig"), MediaType: ocispec.MediaTypeImageManifest, Content: []byte("sig"),
		Subject:  &ocispec.Descriptor{Digest: subject},
		Referrer: ocispec.Descriptor{Digest: digest.FromString("sig"), ArtifactType: "x/sig"}}
	for _, p := range []registryapi.ManifestPut{m, ref} {
		if err := b.PutManifest(ctx, "r", p); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.GetManifest(ctx, "r", "v1"); err != nil || got.Digest != m.Digest {
		t.Fatalf("get by tag: %v %v", got.Digest, err)
	}
	if refs, _ := b.Referrers(ctx, "r", subject); len(refs) != 1 || refs[0].ArtifactType != "x/sig" {
		t.Fatalf("referrers %+v", refs)
	}
	if err := b.DeleteManifest(ctx, "r", ref.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if refs, _ := b.Referrers(ctx, "r", subject); len(refs) != 0 {
		t.Fatalf("referrer survived its deletion: %+v", refs)
	}
	if err := b.DeleteManifest(ctx, "r", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetManifest(ctx, "r", m.Digest.String()); err != nil {
		t.Fatalf("deleting a tag deleted the manifest: %v", err)
	}
	if tags, _ := b.Tags(ctx, "r"); len(tags) != 0 {
		t.Fatalf("tags %v", tags)
	}
}

// TestConcurrent exercises every method at once under -race.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memory.New()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			repo := fmt.Sprintf("repo/%d", i%4)
			content := fmt.Sprintf("blob %d", i)
			up, err := b.StartUpload(ctx, repo)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = up.Append(ctx, strings.NewReader(content))
			d := digest.FromString(content)
			if _, err := up.Commit(ctx, d); err != nil {
				t.Error(err)
			}
			_ = b.PutManifest(ctx, repo, registryapi.ManifestPut{Tag: fmt.Sprint("t", i), Digest: d, MediaType: "x", Content: []byte(content)})
			_, _ = b.Tags(ctx, repo)
			_, _ = b.Repositories(ctx)
			_, _ = b.MountBlob(ctx, "shared/repo", repo, d)
			_, _ = b.Referrers(ctx, repo, d)
			if blob, err := b.GetBlob(ctx, repo, d); err == nil {
				_, _ = io.Copy(io.Discard, blob.Content)
				_ = blob.Content.Close()
			}
			_ = b.DeleteManifest(ctx, repo, d.String())
			_ = b.DeleteBlob(ctx, repo, d)
		})
	}
	wg.Wait()
}
