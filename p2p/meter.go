package p2p

import (
	"sync"
	"time"
)

// meterBucket is the length of a rateMeter's buckets.
const meterBucket = 500 * time.Millisecond

// rateMeter measures a byte rate over the last one to two buckets.
type rateMeter struct {
	mu        sync.Mutex
	start     time.Time // of the current bucket
	cur, prev int64
}

func (m *rateMeter) roll(now time.Time) {
	switch since := now.Sub(m.start); {
	case since < meterBucket:
	case since < 2*meterBucket:
		m.prev, m.cur = m.cur, 0
		m.start = m.start.Add(meterBucket)
	default:
		m.prev, m.cur = 0, 0
		m.start = now
	}
}

// add counts n bytes at now.
func (m *rateMeter) add(n int64, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	m.cur += n
}

// rate is the bytes per second of the last bucket and the current one.
func (m *rateMeter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roll(now)
	span := now.Sub(m.start) + meterBucket
	return float64(m.prev+m.cur) / span.Seconds()
}
