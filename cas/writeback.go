package cas

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writebackChunk is how many written bytes accumulate before the kernel
// is asked to start writing them back. Starting writeback while the blob
// arrives (SYNC_FILE_RANGE_WRITE does not wait) leaves little for the
// fsync at commit, which otherwise flushes a whole large blob at once
// while every client waits for its last byte.
const writebackChunk = 32 << 20

// writeback counts a writer's unflushed bytes and starts writeback of the
// file every writebackChunk bytes.
type writeback struct {
	pending atomic.Int64
}

// wrote records n bytes written to fd and, past the chunk size, starts
// asynchronous writeback of everything written so far. Errors are ignored:
// the fsync at commit is what makes the blob durable.
func (wb *writeback) wrote(fd uintptr, n int) {
	if wb.pending.Add(int64(n)) < writebackChunk {
		return
	}
	wb.pending.Store(0)
	_ = unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
