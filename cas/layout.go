package cas

import (
	"crypto/rand"
	_ "crypto/sha256" // registers sha256 for go-digest
	_ "crypto/sha512" // registers sha512 for go-digest
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Directory and file names under Config.Dir; the tree is drawn in the
// package comment.
const (
	blobsDir      = "blobs"
	incompleteDir = "incomplete"
	uploadsDir    = "uploads"
	indexFile     = "index.db"
)

// algorithms are the digest algorithms the store accepts.
var algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// validateDigest accepts well-formed sha256 and sha512 digests.
func validateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	default:
		return fmt.Errorf("digest %q: %w", d, digest.ErrDigestUnsupported)
	}
}

// blobPath is <dir>/blobs/<alg>/<first two hex>/<hex>.
func (s *Store) blobPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(s.dir, blobsDir, string(d.Algorithm()), enc[:2], enc)
}

// randomID returns 16 random bytes in hex.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// syncDir fsyncs a directory so that renames into it are durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// makeShard creates the directory that will hold d's file, fsyncing its
// parent when the directory is new.
func (s *Store) makeShard(d digest.Digest) (string, error) {
	shard := filepath.Dir(s.blobPath(d))
	err := os.Mkdir(shard, 0o755)
	switch {
	case errors.Is(err, fs.ErrExist):
		return shard, nil
	case err != nil:
		return "", fmt.Errorf("create %s: %w", shard, err)
	}
	if err := syncDir(filepath.Dir(shard)); err != nil {
		return "", fmt.Errorf("sync %s: %w", filepath.Dir(shard), err)
	}
	return shard, nil
}

// prepareDirs creates the store's directories and empties incomplete/ and
// uploads/: whatever is there was left by an interrupted write or upload.
func prepareDirs(dir string) error {
	for _, d := range []string{
		dir,
		filepath.Join(dir, blobsDir, string(digest.SHA256)),
		filepath.Join(dir, blobsDir, string(digest.SHA512)),
		filepath.Join(dir, incompleteDir),
		filepath.Join(dir, uploadsDir),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, d := range []string{incompleteDir, uploadsDir} {
		if err := emptyDir(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	return nil
}

func emptyDir(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// scanBlobs returns the size of every well-named blob file. Files that do
// not belong to the layout are logged and left alone.
func (s *Store) scanBlobs() (map[digest.Digest]int64, error) {
	files := make(map[digest.Digest]int64)
	for _, alg := range algorithms {
		root := filepath.Join(s.dir, blobsDir, string(alg))
		shards, err := os.ReadDir(root)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", root, err)
		}
		for _, shard := range shards {
			if !shard.IsDir() {
				s.log.Warn("unexpected file in blob store", "path", filepath.Join(root, shard.Name()))
				continue
			}
			sdir := filepath.Join(root, shard.Name())
			des, err := os.ReadDir(sdir)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", sdir, err)
			}
			for _, de := range des {
				d := digest.NewDigestFromEncoded(alg, de.Name())
				if !de.Type().IsRegular() || d.Validate() != nil || de.Name()[:2] != shard.Name() {
					s.log.Warn("unexpected file in blob store", "path", filepath.Join(sdir, de.Name()))
					continue
				}
				fi, err := de.Info()
				if err != nil {
					return nil, fmt.Errorf("stat %s: %w", filepath.Join(sdir, de.Name()), err)
				}
				files[d] = fi.Size()
			}
		}
	}
	return files, nil
}

// reconcile makes the index agree with the blob files: a file without an
// entry is added as StateLocal (we cannot know it was replicated), an entry
// without a file is dropped, and a file whose size disagrees with its entry
// is removed with the entry. It sets the usage counters.
func (s *Store) reconcile() error {
	files, err := s.scanBlobs()
	if err != nil {
		return err
	}
	now := s.now().UnixNano()
	var added, dropped int
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketBlobs)
		if err != nil {
			return fmt.Errorf("create bucket: %w", err)
		}
		var stale [][]byte
		err = b.ForEach(func(k, v []byte) error {
			d := digest.Digest(k)
			size, ok := files[d]
			e, derr := decodeEntry(v)
			switch {
			case !ok:
				stale = append(stale, k)
			case derr != nil:
				// Unreadable entry: keep the blob, re-added below as
				// StateLocal like any file without an entry.
				s.log.Warn("unreadable index entry; re-indexing blob", "digest", d, "err", derr)
				stale = append(stale, k)
			case e.size != size:
				s.log.Warn("blob size disagrees with index; removing", "digest", d, "file", size, "index", e.size)
				if err := os.Remove(s.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove %s: %w", d, err)
				}
				delete(files, d)
				stale = append(stale, k)
			default:
				s.bytes += size
				s.blobs++
				delete(files, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("drop %s: %w", k, err)
			}
			dropped++
		}
		for d, size := range files {
			if err := putEntry(b, d, entry{size: size, state: StateLocal, atime: now}); err != nil {
				return err
			}
			s.bytes += size
			s.blobs++
			added++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile index: %w", err)
	}
	if added > 0 || dropped > 0 {
		s.log.Info("reconciled blob index", "added", added, "dropped", dropped)
	}
	return nil
}
