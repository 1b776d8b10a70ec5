package cas

import (
	"errors"
	"syscall"
)

// IsNoSpace reports whether err says the file system is full (or the
// agent's disk quota is used up).
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// noteWriteErr reacts to a failed write: a full disk starts an eviction
// pass at once (the write itself fails; its temp file is removed by its
// owner), instead of waiting for the next commit to notice.
func (s *Store) noteWriteErr(err error) {
	if !IsNoSpace(err) {
		return
	}
	u := s.Usage()
	s.log.Warn("disk full while writing a blob; evicting", "err", err, "cached_bytes", u.Bytes, "limit", u.Limit)
	s.signalEvict()
}
