package cas

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// writebackChunk is how many written bytes accumulate before the kernel
// is asked to start writing them back. Starting writeback while the blob
// arrives (SYNC_FILE_RANGE_WRITE does not wait for the I/O) leaves little
// for the fsync at commit, which otherwise flushes a whole large blob at
// once while every client waits for its last byte.
const writebackChunk = 8 << 20

// writeback counts a writer's unflushed bytes and decides when to start
// writeback of the file. At most one writeback runs at a time.
type writeback struct {
	pending atomic.Int64
	running atomic.Bool
}

// due records n bytes written and reports whether the caller should start
// a writeback now (and call done when it ends). Past the chunk size with a
// writeback still running, it waits for a later write.
func (wb *writeback) due(n int) bool {
	if wb.pending.Add(int64(n)) < writebackChunk {
		return false
	}
	if !wb.running.CompareAndSwap(false, true) {
		return false
	}
	wb.pending.Store(0)
	return true
}

// done ends the writeback started after due.
func (wb *writeback) done() { wb.running.Store(false) }

// startWriteback starts writeback of everything written so far, from its
// own goroutine: submitting the I/O blocks while the device queue is full
// (tens of milliseconds on a busy disk), and a WriteAt that did it inline
// stalled the network stream feeding it. The goroutine holds a reference
// to the file, so the descriptor stays open until it ends. Errors are
// ignored: the fsync at commit is what makes the blob durable. w.mu is held.
func (w *Writer) startWriteback() {
	if w.fileRefs == 0 { // failed or committed meanwhile: nothing to do
		w.wb.done()
		return
	}
	w.fileRefs++
	go func() {
		defer w.releaseFile()
		defer w.wb.done()
		_ = unix.SyncFileRange(int(w.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}()
}
