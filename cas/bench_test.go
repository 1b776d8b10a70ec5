package cas_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

const benchSize = 64 << 20

// BenchmarkWriteCommit writes and commits a 64 MiB blob in 1 MiB writes;
// the baseline is the same bytes hashed into a plain file with fsync and
// rename, i.e. the least any verified atomic store must do.
func BenchmarkWriteCommit(b *testing.B) {
	data, d := testBlob(benchSize, 1, digest.SHA256)
	const chunk = 1 << 20
	b.Run("baseline", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(benchSize)
		for i := 0; b.Loop(); i++ {
			f, err := os.CreateTemp(dir, "tmp")
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			for off := 0; off < len(data); off += chunk {
				if _, err := f.Write(data[off : off+chunk]); err != nil {
					b.Fatal(err)
				}
				h.Write(data[off : off+chunk])
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := os.Rename(f.Name(), filepath.Join(dir, "blob")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		s, _ := openStore(b, nil)
		b.SetBytes(benchSize)
		for b.Loop() {
			w, err := s.Create(context.Background(), d, benchSize, cas.WriteOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(data); off += chunk {
				if _, err := w.Write(data[off : off+chunk]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Commit(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(context.Background(), d); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("parallel ranges", func(b *testing.B) {
		// Four writers, each filling 4 MiB ranges round-robin: most bytes
		// land past the hashed prefix and are hashed back from the file.
		s, _ := openStore(b, nil)
		b.SetBytes(benchSize)
		const rangeSize, writers = 4 << 20, 4
		for b.Loop() {
			w, err := s.Create(context.Background(), d, benchSize, cas.WriteOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			for k := range writers {
				wg.Go(func() {
					for off := k * rangeSize; off < len(data); off += writers * rangeSize {
						for c := off; c < off+rangeSize; c += chunk {
							if _, err := w.WriteAt(data[c:c+chunk], int64(c)); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			if _, err := w.Commit(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(context.Background(), d); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkFollow measures followers streaming a 64 MiB blob while it is
// written, against reading the committed file directly.
func BenchmarkFollow(b *testing.B) {
	data, d := testBlob(benchSize, 2, digest.SHA256)
	const chunk = 1 << 20
	b.Run("committed file baseline", func(b *testing.B) {
		s, _ := openStore(b, nil)
		put(b, s, d, data, cas.WriteOptions{})
		b.SetBytes(benchSize)
		buf := make([]byte, 256<<10)
		for b.Loop() {
			f, _, err := s.Open(context.Background(), d)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, onlyReader{f}, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	for _, followers := range []int{1, 8} {
		b.Run("live x"+strconv.Itoa(followers), func(b *testing.B) {
			s, _ := openStore(b, nil)
			b.SetBytes(benchSize * int64(followers))
			for b.Loop() {
				w, err := s.Create(context.Background(), d, benchSize, cas.WriteOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				for range followers {
					f, err := s.Follow(context.Background(), d)
					if err != nil {
						b.Fatal(err)
					}
					wg.Go(func() {
						defer f.Close()
						buf := make([]byte, 256<<10)
						if n, err := io.CopyBuffer(io.Discard, onlyReader{f}, buf); err != nil || n != benchSize {
							b.Errorf("follow: %d bytes, %v", n, err)
						}
					})
				}
				for off := 0; off < len(data); off += chunk {
					if _, err := w.Write(data[off : off+chunk]); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Commit(context.Background()); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
				b.StopTimer()
				if err := s.Delete(context.Background(), d); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
