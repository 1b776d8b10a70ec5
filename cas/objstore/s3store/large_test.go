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
	const bound = 96 << 20 // the object is 256 MiB; a part is 16 MiB
	g := startGateway(t)
	opts := testOptions(t)
	opts.Logger = nil
	s := newStore(t, g, "", opts)
	ctx := t.Context()

	for _, tt := range []struct {
		name     string
		declared int64
	}{{"known size", size}, {"unknown size", -1}} {
		var seed [32]byte
		seed[0] = byte(tt.declared)
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), size), h)

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		sampler := sampleHeap()
		start := time.Now()
		err := s.Put(ctx, "large", src, tt.declared)
		putTime := time.Since(start)
		peak := sampler.done()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: Put: %v", tt.name, err)
		}
		grew := int64(peak) - int64(before.HeapInuse)
		t.Logf("%s: Put of 256 MiB in %v: peak heap +%d MiB, allocated %d MiB in total",
			tt.name, putTime.Round(time.Millisecond), grew>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
		if grew > bound {
			t.Errorf("%s: Put grew the heap by %d MiB, want under %d MiB", tt.name, grew>>20, bound>>20)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/2 {
			t.Errorf("%s: Put allocated %d MiB, want under half the object (nothing copies it whole)", tt.name, alloc>>20)
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
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
			t.Fatalf("%s: Get returned %d bytes (%v); sha256 match %v", tt.name, n, err, bytes.Equal(h.Sum(nil), want))
		}
		grew = int64(peak) - int64(before.HeapInuse)
		t.Logf("%s: Get of 256 MiB in %v: peak heap +%d MiB", tt.name, time.Since(start).Round(time.Millisecond), grew>>20)
		if grew > bound {
			t.Errorf("%s: Get grew the heap by %d MiB, want under %d MiB", tt.name, grew>>20, bound>>20)
		}
	}
}
