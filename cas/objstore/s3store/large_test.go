package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
)

// heapSampler records the peak heap in use while it runs.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			h.peak = max(h.peak, ms.HeapInuse)
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

// done stops sampling and returns the peak.
func (h *heapSampler) done() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak
}

// TestLargeStreamBoundedMemory streams a 256 MiB object in and out and
// checks the heap never grows by more than a few parts. It does not run in
// parallel, so other tests' buffers stay out of the measurement.
func TestLargeStreamBoundedMemory(t *testing.T) {
	const size = 256 << 20
	const (
		bound      = 96 << 20 // peak heap growth; a part is 16 MiB
		allocBound = 64 << 20 // all allocations of a Put, garbage included
	)
	g := s3test.Start(t)
	opts := testOptions(t)
	opts.Logger = nil
	s := newStore(t, g, "", opts)
	ctx := t.Context()

	// Both go through the same multipart path; the unknown size is smaller
	// to keep the package's tests quick.
	for _, tt := range []struct {
		name       string
		size       int64
		unknownLen bool
	}{{"known size", size, false}, {"unknown size", 64 << 20, true}} {
		var seed [32]byte
		seed[0] = byte(tt.size >> 20)
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), tt.size), h)
		declared := tt.size
		if tt.unknownLen {
			declared = -1
		}

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		sampler := sampleHeap()
		start := time.Now()
		err := s.Put(ctx, "large", src, declared)
		putTime := time.Since(start)
		peak := sampler.done()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: Put: %v", tt.name, err)
		}
		grew := int64(peak) - int64(before.HeapInuse)
		t.Logf("%s: Put of %d MiB in %v: peak heap +%d MiB, allocated %d MiB in total",
			tt.name, tt.size>>20, putTime.Round(time.Millisecond), grew>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
		if grew > bound {
			t.Errorf("%s: Put grew the heap by %d MiB, want under %d MiB", tt.name, grew>>20, bound>>20)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > allocBound {
			t.Errorf("%s: Put allocated %d MiB in total, want under %d MiB (nothing copies the object)", tt.name, alloc>>20, allocBound>>20)
		}

		want := h.Sum(nil)
		h.Reset()
		runtime.GC()
		runtime.ReadMemStats(&before)
		sampler = sampleHeap()
		start = time.Now()
		rc, err := s.Get(ctx, "large", 0, -1)
		if err != nil {
			sampler.done()
			t.Fatalf("%s: Get: %v", tt.name, err)
		}
		n, err := io.Copy(h, rc)
		rc.Close()
		peak = sampler.done()
		if err != nil || n != tt.size || !bytes.Equal(h.Sum(nil), want) {
			t.Fatalf("%s: Get returned %d bytes (%v); sha256 match %v", tt.name, n, err, bytes.Equal(h.Sum(nil), want))
		}
		grew = int64(peak) - int64(before.HeapInuse)
		t.Logf("%s: Get of %d MiB in %v: peak heap +%d MiB", tt.name, tt.size>>20, time.Since(start).Round(time.Millisecond), grew>>20)
		if grew > bound {
			t.Errorf("%s: Get grew the heap by %d MiB, want under %d MiB", tt.name, grew>>20, bound>>20)
		}
	}
}
