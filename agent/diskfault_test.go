package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas"
)

// smallDisk mounts a tmpfs of size bytes at a new directory and unmounts it
// at cleanup; it skips the test where mounting is not permitted.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("disk-full test needs to mount a tmpfs (root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full and returns
// its path (another program eating the disk).
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 256<<10)
	for i := 0; i < 4096; i++ {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the disk did not fill up")
	return ""
}

// TestReliabilityDiskFull runs an agent whose data directory is on a 64 MiB
// file system, fills that file system behind its back and pushes a blob:
// the push fails with 507 and an OCI error body naming the full disk, no
// partial blob or upload file is left, eviction starts at once and frees
// room, so the next (smaller) push succeeds, and pulls still work.
func TestReliabilityDiskFull(t *testing.T) {
	disk := smallDisk(t, "64m")
	a := startAgent(t, "", func(c *config.Config) {
		c.DataDir = disk
		c.Cache.ScrubRate = 0
	})
	base := "http://" + a.RegistryAddr()
	var cached [][]byte
	for i := range 4 {
		b, d := randomBlob(uint64(60+i), 8<<20)
		pushReplicated(t, a, "disk/full", b, d)
		cached = append(cached, b)
	}
	before := a.cas.Usage()
	filler := fillDisk(t, disk)

	big, bigD := randomBlob(70, 12<<20)
	req, err := http.NewRequest(http.MethodPost, base+"/v2/disk/full/blobs/uploads/?digest="+bigD.String(), strings.NewReader(string(big)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Errors []struct {
			Code, Message string
			Detail        any
		}
	}
	if resp.StatusCode != http.StatusInsufficientStorage || json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 ||
		e.Errors[0].Code != "UNKNOWN" || !strings.Contains(e.Errors[0].Message, "disk is full") || e.Errors[0].Detail != "no space left on device" {
		t.Fatalf("push to a full disk: %d %s, want 507 with an OCI error naming the full disk", resp.StatusCode, body)
	}
	t.Logf("push to a full disk: %d %s", resp.StatusCode, body)

	// Nothing partial: the digest is unknown, no temp or upload file stays.
	if resp, err := http.Head(base + "/v2/disk/full/blobs/" + bigD.String()); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of the failed blob: %v %v, want 404", resp, err)
	}
	for _, sub := range []string{"incomplete", "uploads"} {
		if des, err := os.ReadDir(filepath.Join(disk, "cas", sub)); err != nil || len(des) != 0 {
			t.Fatalf("cas/%s after the failed push: %d entries, %v", sub, len(des), err)
		}
	}
	if _, err := os.Stat(cachedBlobPath(disk, bigD)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob file of the failed push: %v", err)
	}
	// The full disk started an eviction of replicated blobs.
	waitFor(t, "eviction after the full disk", 15*time.Second, func() bool { return a.cas.Usage().Blobs < before.Blobs })
	after := a.cas.Usage()
	t.Logf("eviction: %d blobs/%d MiB cached before, %d/%d MiB after", before.Blobs, before.Bytes>>20, after.Blobs, after.Bytes>>20)

	// The room it made takes a smaller push while the filler is still there.
	small, smallD := randomBlob(71, 4<<20)
	if code := pushBlob(t, base, "disk/full", small, smallD); code != http.StatusCreated {
		t.Fatalf("push after eviction: %d", code)
	}
	// The other program frees its file: every blob pulls, the evicted ones
	// fetched again from the origin, and the big push now works.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, b := range cached {
		getBlobFrom(t, a, "disk/full", b)
	}
	if code := pushBlob(t, base, "disk/full", big, bigD); code != http.StatusCreated {
		t.Fatalf("push after the disk has room again: %d", code)
	}
	if info, err := a.cas.Stat(t.Context(), bigD); err != nil || info.State != cas.StateLocal {
		t.Fatalf("big blob after the retry: %+v %v", info, err)
	}
}

// getBlobFrom pulls b from repo through a and checks the bytes.
func getBlobFrom(t *testing.T, a *testAgent, repo string, b []byte) {
	t.Helper()
	d := digest.FromBytes(b)
	resp, err := http.Get(a.url("/v2/" + repo + "/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || digest.FromBytes(got) != d {
		t.Fatalf("GET %s: status %d, %d bytes, err %v", d, resp.StatusCode, len(got), err)
	}
}
