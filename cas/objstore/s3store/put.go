package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// maxParts is S3's limit on the parts of a multipart upload; with the
// default 16 MiB parts it allows objects up to 156 GiB.
const maxParts = 10000

// smallPut is the size up to which a Put of known size gets a buffer of
// its own rather than a pooled part buffer.
const smallPut = 1 << 20

// Put stores r under key; the object appears whole or not at all. Put
// reads r one part (Options.PartSize) at a time into a buffer: an object
// that fits goes up in one PUT, a larger one (or one of unknown size that
// does not fit) as a multipart upload. Each request is resent from the
// buffer when it fails transiently, and a failed multipart upload is
// aborted. If size >= 0 and r does not hold exactly size bytes, nothing is
// stored.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3store: put %s: %w", key, err)
	}
	if size > s.opts.PartSize*maxParts {
		return fmt.Errorf("s3store: put %s: %d bytes exceed %d parts of %d", key, size, maxParts, s.opts.PartSize)
	}
	buf, release := s.buffer(size)
	defer release()
	src := &source{r: objstore.ContextReader(ctx, r), size: size}
	n, last, err := src.readPart(buf)
	if err != nil {
		return fmt.Errorf("s3store: put %s: %w", key, err)
	}
	if last {
		return s.putObject(ctx, key, name, buf[:n])
	}
	return s.putMultipart(ctx, key, name, src, buf, n)
}

// buffer returns a buffer for a Put of size bytes (-1: unknown) and a
// function to release it.
func (s *Store) buffer(size int64) ([]byte, func()) {
	if size >= 0 && size <= smallPut {
		return make([]byte, size), func() {}
	}
	p := s.parts.Get().(*[]byte)
	return *p, func() { s.parts.Put(p) }
}

// putObject stores data as one object with a single PUT.
func (s *Store) putObject(ctx context.Context, key, name string, data []byte) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	return s.do(ctx, call{op: "put " + key, retry: true, untimed: true}, func(actx context.Context) error {
		_, err := s.client.PutObject(actx, s.bucket, name, bytes.NewReader(data), int64(len(data)), opts)
		return err
	})
}

// putMultipart uploads src as parts of len(buf) bytes, the first n of
// which are already in buf, and completes the upload; on failure it aborts
// the upload, even if ctx is cancelled.
func (s *Store) putMultipart(ctx context.Context, key, name string, src *source, buf []byte, n int) (err error) {
	core := minio.Core{Client: s.client}
	var uploadID string
	err = s.do(ctx, call{op: "put " + key + ": start upload", retry: true}, func(actx context.Context) error {
		var err error
		uploadID, err = core.NewMultipartUpload(actx, s.bucket, name, minio.PutObjectOptions{ContentType: "application/octet-stream"})
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.abort(ctx, key, name, uploadID)
		}
	}()
	var (
		parts []minio.CompletePart
		last  bool
	)
	for num := 1; ; num++ {
		if num > maxParts {
			return fmt.Errorf("s3store: put %s: more than %d parts of %d bytes", key, maxParts, len(buf))
		}
		part := buf[:n]
		var etag string
		op := fmt.Sprintf("put %s: part %d", key, num)
		err := s.do(ctx, call{op: op, retry: true, untimed: true}, func(actx context.Context) error {
			p, err := core.PutObjectPart(actx, s.bucket, name, uploadID, num, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
			etag = p.ETag
			return err
		})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: etag})
		if last {
			break
		}
		if n, last, err = src.readPart(buf); err != nil {
			return fmt.Errorf("s3store: put %s: %w", key, err)
		}
		if last && n == 0 {
			break
		}
	}
	return s.do(ctx, call{op: "put " + key + ": complete upload", retry: true, untimed: true}, func(actx context.Context) error {
		_, err := core.CompleteMultipartUpload(actx, s.bucket, name, uploadID, parts, minio.PutObjectOptions{})
		return err
	})
}

// abort abandons a multipart upload, detached from the caller's
// cancellation so that a cancelled Put leaves no parts behind. If that
// fails, the parts stay until the bucket's lifecycle rules remove them.
func (s *Store) abort(ctx context.Context, key, name, uploadID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	err := s.do(ctx, call{op: "put " + key + ": abort upload", retry: true}, func(actx context.Context) error {
		return minio.Core{Client: s.client}.AbortMultipartUpload(actx, s.bucket, name, uploadID)
	})
	if err != nil && errorCode(err) != "NoSuchUpload" {
		s.log.Warn("s3store: multipart upload left behind", "key", key, "upload", uploadID, "err", err)
	}
}
