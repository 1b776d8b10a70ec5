package agent

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/locks"
)

func classedMembers(classes ...int) []locks.Member {
	var out []locks.Member
	for i, c := range classes {
		m := locks.Member{Name: strconv.Itoa(i), Status: locks.StatusAlive, Tags: map[string]string{}}
		if c > 0 {
			m.Tags[TagDownlink] = strconv.Itoa(c)
		}
		out = append(out, m)
	}
	return out
}

// TestLinkClassSlow: a host two classes (4×) or more below the median of
// the members advertising one is slow, once at least four advertise;
// failed members do not count.
func TestLinkClassSlow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mine    int64
		members []locks.Member
		want    bool
	}{
		{"a tenth of the median", 17, classedMembers(17, 20, 20, 20, 24), true},
		{"half the median", 19, classedMembers(19, 20, 20, 20, 20), false},
		{"the median", 20, classedMembers(17, 20, 20, 20, 20), false},
		{"too few classed", 17, classedMembers(17, 20, 20, 0, 0), false},
		{"unknown own class", 0, classedMembers(17, 20, 20, 20, 20), false},
		{"failed members left out", 17, func() []locks.Member {
			ms := classedMembers(17, 20, 20, 20)
			ms = append(ms, classedMembers(17, 17, 17)...)
			for i := 4; i < len(ms); i++ {
				ms[i].Status = locks.StatusFailed
			}
			return ms
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &linkClass{members: func() []locks.Member { return tc.members }}
			l.mine.Store(tc.mine)
			if got := l.slow(); got != tc.want {
				t.Fatalf("slow() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLinkClassAdvertises: the class of the measured downlink is set as
// a tag, and set again only when it changes.
func TestLinkClassAdvertises(t *testing.T) {
	var mu sync.Mutex
	rate := 2e6 // class 20
	var sets []string
	const every = 20 * time.Millisecond
	l := &linkClass{
		every: every,
		rate:  func() float64 { mu.Lock(); defer mu.Unlock(); return rate },
		setTag: func(k, v string) error {
			mu.Lock()
			defer mu.Unlock()
			if k == TagDownlink {
				sets = append(sets, v)
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.run(ctx); close(done) }()
	waitFor(t, "the first class", time.Second, func() bool { return l.mine.Load() == 20 })
	mu.Lock()
	rate = 2.05e6 // same class
	mu.Unlock()
	time.Sleep(5 * every)
	mu.Lock()
	rate = 2e5 // class 17
	mu.Unlock()
	waitFor(t, "the new class", time.Second, func() bool { return l.mine.Load() == 17 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(sets) != 2 || sets[0] != "20" || sets[1] != "17" {
		t.Fatalf("tags set %v, want [20 17]", sets)
	}
}

// TestNextClassHysteresis: the advertised class rises at once and falls
// only when the rate is half a class or more below it.
func TestNextClassHysteresis(t *testing.T) {
	pow := func(x float64) float64 { return math.Exp2(x) }
	for _, tc := range []struct {
		name string
		cur  int64
		rate float64
		want int64
	}{
		{"first measurement", 0, pow(20.9), 20},
		{"unknown rate", 21, 1, 0},
		{"just below the class", 21, pow(20.9), 21},
		{"half a class below", 21, pow(20.4), 20},
		{"far below", 21, pow(17.2), 17},
		{"within the class", 21, pow(21.7), 21},
		{"just above the class", 21, pow(22.1), 22},
		{"far above", 17, pow(20.9), 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextClass(tc.cur, tc.rate); got != tc.want {
				t.Fatalf("nextClass(%d, 2^%.1f) = %d, want %d", tc.cur, math.Log2(tc.rate), got, tc.want)
			}
		})
	}
}
