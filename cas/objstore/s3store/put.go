package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// maxParts is S3's limit on the parts of a multipart upload; with the
// default 16 MiB parts it allows objects up to 156 GiB.
const maxParts = 10000

// Put stores r under key; the object appears whole or not at all. An
// object of known size up to Options.PartSize is streamed in one PUT (and
// retried only if the failure came before any of r was read). Anything
// larger, or of unknown size beyond one part, goes up as a multipart
// upload from a buffer of one part, so each part is retried on its own and
// a failed upload is aborted. If size >= 0 and r does not hold exactly size
// bytes, nothing is stored.
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
	body := &putBody{r: objstore.ContextReader(ctx, r), size: size}
	if size >= 0 && size <= s.opts.PartSize {
		c := call{op: "put " + key, retry: true, retryIf: body.untouched, untimed: true}
		return s.putObject(ctx, c, name, body, size, body)
	}

	bufp := s.parts.Get().(*[]byte)
	defer s.parts.Put(bufp)
	buf := *bufp
	n, last, err := readPart(body, buf)
	if err != nil {
		return fmt.Errorf("s3store: put %s: %w", key, err)
	}
	if last {
		// Unknown size, and it all fit in one part: one PUT, retryable.
		c := call{op: "put " + key, retry: true, untimed: true}
		return s.putObject(ctx, c, name, bytes.NewReader(buf[:n]), int64(n), nil)
	}
	return s.putMultipart(ctx, key, name, body, buf, n)
}

// putObject stores one object with a single PUT of r. body, if not nil, is
// r's source, whose failures are the caller's, not the service's.
func (s *Store) putObject(ctx context.Context, c call, name string, r io.Reader, size int64, body *putBody) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	return s.do(ctx, c, func(actx context.Context) error {
		if sr, ok := r.(io.Seeker); ok {
			if _, err := sr.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		_, err := s.client.PutObject(actx, s.bucket, name, r, size, opts)
		if body != nil {
			if berr := body.failure(); berr != nil {
				return &bodyError{err: berr}
			}
		}
		return err
	})
}

// readPart fills buf from body. last reports that body ended within it.
func readPart(body *putBody, buf []byte) (n int, last bool, err error) {
	n, err = io.ReadFull(body, buf)
	switch {
	case err == nil:
		return n, false, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, body.failure()
	}
	return n, false, err
}

// putMultipart uploads body as parts of len(buf) bytes, the first n of
// which are already in buf, and completes the upload; on failure it aborts
// the upload, even if ctx is cancelled.
func (s *Store) putMultipart(ctx context.Context, key, name string, body *putBody, buf []byte, n int) (err error) {
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
		if n, last, err = readPart(body, buf); err != nil {
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
