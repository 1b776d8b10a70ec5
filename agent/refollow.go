package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
)

// maxRefollows bounds how often a blob response follows a new write of its
// blob: the fetch tries peers, then the origin (after a second swarm round
// at most), each attempt with a writer of its own.
const maxRefollows = 3

// refollower reads a blob through the fetch that fills the cache. When the
// write it follows fails before the reader got a byte (the swarm ran dry
// and the fetch goes on from the origin with a new writer), it follows the
// blob again instead of failing the response. Once a byte was delivered it
// never switches: the bytes would come from two writes, and only one of
// them is verified.
type refollower struct {
	ctx    context.Context
	d      digest.Digest
	follow func(ctx context.Context) (*cas.Follower, error)
	fl     *cas.Follower

	off       int64 // where the next Read starts (Seek moves it)
	delivered bool  // a Read returned bytes
	refollows int
}

func newRefollower(ctx context.Context, d digest.Digest, follow func(ctx context.Context) (*cas.Follower, error)) (*refollower, error) {
	fl, err := follow(ctx)
	if err != nil {
		return nil, err
	}
	return &refollower{ctx: ctx, d: d, follow: follow, fl: fl}, nil
}

var _ io.ReadSeekCloser = (*refollower)(nil)

func (r *refollower) Read(p []byte) (int, error) {
	for {
		n, err := r.fl.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.delivered = true
		}
		if err == nil || !r.again(err) {
			return n, err
		}
	}
}

// again follows a new write of the blob after err, when that is allowed,
// and says whether it did.
func (r *refollower) again(err error) bool {
	if r.delivered || r.refollows >= maxRefollows || !errors.Is(err, cas.ErrWriteFailed) || r.ctx.Err() != nil {
		return false
	}
	fl, ferr := r.follow(r.ctx)
	if ferr != nil {
		return false
	}
	if _, serr := fl.Seek(r.off, io.SeekStart); serr != nil {
		fl.Close()
		return false
	}
	r.fl.Close()
	r.fl = fl
	r.refollows++
	return true
}

func (r *refollower) Seek(off int64, whence int) (int64, error) {
	n, err := r.fl.Seek(off, whence)
	if err == nil {
		r.off = n
	}
	return n, err
}

// Size is the blob's size as the write being followed knows it.
func (r *refollower) Size() int64 { return r.fl.Size() }

// Verified waits for the followed write's bytes to match the digest. A
// write that failed before a byte was delivered is followed again.
func (r *refollower) Verified(ctx context.Context) error {
	for {
		err := r.fl.Verified(ctx)
		if err == nil || !r.again(err) {
			if err != nil {
				return fmt.Errorf("verify %s: %w", r.d, err)
			}
			return nil
		}
	}
}

func (r *refollower) Close() error { return r.fl.Close() }
