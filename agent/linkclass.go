package agent

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/locks"
)

// A host on a slow link makes a poor origin reader: its group copies the
// blob from the reader as the bytes arrive, so a 100 Mbit/s reader holds
// 1 Gbit/s hosts to 100 Mbit/s for that blob (hetero-links: a layer read
// ahead by a slow host committed 10 s after the other layers, and every
// host waited for it). Each agent advertises its downlink, as its probes
// measured it (the best throughput from any peer), in a serf tag, as a
// power of two of bytes per second. A host whose downlink is a quarter of
// the fleet's median or less does not read ahead, and waits slowYield
// before asking for an origin lock, so that a faster host that wants the
// blob too gets it.
const (
	// TagDownlink is the serf tag with the member's downlink class:
	// floor(log2(bytes per second)).
	TagDownlink = "shoal.dl"
	// downlinkEvery is how often it is recomputed (advertised on change).
	downlinkEvery = 5 * time.Second
	// slowClasses: a host this many classes below the median is slow.
	slowClasses = 2
	// minClassed is how many members must advertise a class before any
	// host is called slow.
	minClassed = 4
	// slowYield is how long a slow host waits before asking for a lock.
	slowYield = 100 * time.Millisecond
)

// downlinkClass is floor(log2(rate)), 0 when unknown.
func downlinkClass(rate float64) int {
	if rate < 2 {
		return 0
	}
	return int(math.Floor(math.Log2(rate)))
}

// nextClass is the class to advertise for rate when cur is advertised. A
// higher class is taken at once (a host's rate climbs while its probes
// find faster peers: a fleet that started its rollout with classes stuck
// low took slow hosts for fast ones and the reverse); a lower one only
// when the rate is half a class below cur: a link near a power of two
// flapped between two classes, and every change is a serf tag update that
// every member of the fleet takes in.
func nextClass(cur int64, rate float64) int64 {
	c := int64(downlinkClass(rate))
	if c == 0 || c >= cur {
		return c
	}
	if math.Log2(rate) >= float64(cur)-0.5 {
		return cur
	}
	return c
}

// linkClass advertises this host's downlink class and says whether the
// host is slow next to the fleet.
type linkClass struct {
	mine    atomic.Int64
	rate    func() float64 // the host's downlink, bytes per second
	members func() []locks.Member
	setTag  func(key, value string) error
	every   time.Duration // 0: downlinkEvery
	log     *slog.Logger  // nil: silent
}

// run recomputes the class every downlinkEvery and advertises changes.
func (l *linkClass) run(ctx context.Context) error {
	every := l.every
	if every <= 0 {
		every = downlinkEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rate := l.rate()
		c := nextClass(l.mine.Load(), rate)
		if c == 0 || c == l.mine.Load() {
			continue
		}
		// The tag is set locally even when serf times out waiting for
		// its broadcast (a busy fleet); it spreads with later gossip.
		l.mine.Store(c)
		err := l.setTag(TagDownlink, strconv.FormatInt(c, 10))
		if l.log != nil {
			l.log.Debug("downlink class", "class", c, "bytes_per_second", int64(rate), "err", err)
		}
	}
}

// slow reports whether this host's class is slowClasses or more below
// the median of the alive members that advertise one (at least
// minClassed of them).
func (l *linkClass) slow() bool {
	mine := int(l.mine.Load())
	if mine == 0 {
		return false
	}
	var classes []int
	for _, m := range l.members() {
		if m.Status != locks.StatusAlive {
			continue
		}
		if c, err := strconv.Atoi(m.Tags[TagDownlink]); err == nil && c > 0 {
			classes = append(classes, c)
		}
	}
	if len(classes) < minClassed {
		return false
	}
	slices.Sort(classes)
	return mine <= classes[len(classes)/2]-slowClasses
}
