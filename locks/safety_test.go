package locks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// holdRecord is one lease as its holder saw it: from the moment Acquire
// returned until it released the lease, learned that it was lost (bounded
// by the lease's deadline), or crashed.
type holdRecord struct {
	node       string
	lock       string
	limit      int
	token      uint64
	asked      time.Time // before Acquire was called: the grant came later
	start, end time.Time
}

// history collects hold records from many goroutines.
type history struct {
	mu      sync.Mutex
	records []holdRecord
	lost    int
}

func (h *history) add(r holdRecord, lost bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.end.After(r.start) {
		h.records = append(h.records, r)
	}
	if lost {
		h.lost++
	}
}

// checkHistory verifies, from the records alone, that no lock ever had more
// holders at once than its limit, that no token was granted twice, and
// that a hold that ended before another began has the smaller token.
func checkHistory(records []holdRecord) []string {
	var problems []string
	byLock := map[string][]holdRecord{}
	for _, r := range records {
		byLock[r.lock] = append(byLock[r.lock], r)
	}
	for lock, rs := range byLock {
		slices.SortFunc(rs, func(a, b holdRecord) int { return a.start.Compare(b.start) })
		seen := map[uint64]bool{}
		for i, a := range rs {
			if seen[a.token] {
				problems = append(problems, fmt.Sprintf("%s: token %d granted twice", lock, a.token))
			}
			seen[a.token] = true
			// The most holders at once occur at some hold's start: count
			// the holds that began by a's start and had not ended.
			active := 0
			for _, b := range rs[:i+1] {
				if b.end.After(a.start) {
					active++
				}
			}
			if active > a.limit {
				problems = append(problems, fmt.Sprintf("%s: %d holders at %v, limit %d", lock, active, a.start.Format("15:04:05.000"), a.limit))
			}
			for _, b := range rs {
				if !a.end.After(b.asked) && a.token >= b.token {
					problems = append(problems, fmt.Sprintf("%s: token %d (%s, ended %v) then %d (%s, began %v): tokens went backwards",
						lock, a.token, a.node, a.end.Format("15:04:05.000"), b.token, b.node, b.start.Format("15:04:05.000")))
				}
			}
		}
	}
	return problems
}

func TestCheckHistoryFindsViolations(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name    string
		records []holdRecord
		bad     bool
	}{
		{"sequential", []holdRecord{{"a", "l", 1, 1, ms(0), ms(0), ms(10)}, {"b", "l", 1, 2, ms(10), ms(10), ms(20)}}, false},
		{"overlap", []holdRecord{{"a", "l", 1, 1, ms(0), ms(0), ms(10)}, {"b", "l", 1, 2, ms(9), ms(9), ms(20)}}, true},
		{"semaphore ok", []holdRecord{{"a", "s", 2, 1, ms(0), ms(0), ms(10)}, {"b", "s", 2, 2, ms(5), ms(5), ms(20)}}, false},
		{"semaphore over", []holdRecord{{"a", "s", 2, 1, ms(0), ms(0), ms(10)}, {"b", "s", 2, 2, ms(1), ms(1), ms(20)}, {"c", "s", 2, 3, ms(2), ms(2), ms(3)}}, true},
		{"backwards", []holdRecord{{"a", "l", 1, 5, ms(0), ms(0), ms(10)}, {"b", "l", 1, 2, ms(11), ms(11), ms(20)}}, true},
		{"duplicate token", []holdRecord{{"a", "s", 2, 5, ms(0), ms(0), ms(10)}, {"b", "s", 2, 5, ms(1), ms(1), ms(20)}}, true},
		{"other locks", []holdRecord{{"a", "l", 1, 5, ms(0), ms(0), ms(10)}, {"b", "m", 1, 2, ms(1), ms(1), ms(20)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := checkHistory(tt.records); (len(got) > 0) != tt.bad {
				t.Fatalf("checkHistory = %v, want violations %v", got, tt.bad)
			}
		})
	}
}

// chaosFleet is a fleet that the safety test can crash, restart and cut.
type chaosFleet interface {
	service(node string) *Service
	crash(node string)
	restart(node string)
	setLink(a, b string, up bool)
	proxies() []string
}

// safetyRun drives a fleet through random acquire/release, crash, restart
// and partition events and returns the recorded history.
type safetyRun struct {
	f       chaosFleet
	hist    history
	locks   map[string]int // name → limit
	mu      sync.Mutex
	workers map[string]context.CancelFunc // node → its workers
	killed  map[string]time.Time
	wg      sync.WaitGroup
}

func (s *safetyRun) startWorkers(node string, seed uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.workers[node] = cancel
	delete(s.killed, node)
	s.mu.Unlock()
	svc := s.f.service(node)
	names := make([]string, 0, len(s.locks))
	for n := range s.locks {
		names = append(names, n)
	}
	slices.Sort(names)
	for w := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		s.wg.Go(func() { s.work(ctx, node, svc, names, rng) })
	}
}

// killTime returns when node was killed, if its current workers were.
func (s *safetyRun) killTime(node string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.killed[node]
	return t, ok
}

func (s *safetyRun) work(ctx context.Context, node string, svc *Service, names []string, rng *rand.Rand) {
	for ctx.Err() == nil {
		lock := names[rng.IntN(len(names))]
		limit := s.locks[lock]
		asked := time.Now()
		l, err := svc.Acquire(ctx, lock, AcquireOptions{Limit: limit, Wait: time.Duration(100+rng.IntN(600)) * time.Millisecond})
		if err != nil {
			continue
		}
		start := time.Now()
		rec := holdRecord{node: node, lock: lock, limit: limit, token: l.Token, asked: asked, start: start}
		hold := time.Duration(2+rng.IntN(60)) * time.Millisecond
		if rng.IntN(5) == 0 {
			hold = time.Duration(200+rng.IntN(1300)) * time.Millisecond // across renewals and chaos
		}
		select {
		case <-time.After(hold):
			rec.end = time.Now()
			s.hist.add(rec, false)
			_ = l.Release(context.Background())
		case <-l.Lost():
			rec.end = time.Now()
			if d := l.Deadline(); d.Before(rec.end) {
				rec.end = d
			}
			s.hist.add(rec, true)
		case <-ctx.Done():
			// Crashed: the hold ended when the node died.
			if kt, ok := s.killTime(node); ok {
				rec.end = kt
				s.hist.add(rec, false)
			}
			_ = l.Release(context.Background()) // stops the renewer; the dead node's RPCs fail
			return
		}
	}
}

func (s *safetyRun) kill(node string) {
	s.mu.Lock()
	s.killed[node] = time.Now()
	cancel := s.workers[node]
	s.mu.Unlock()
	cancel()
	s.f.crash(node)
}

func safetySeed() uint64 {
	if v := os.Getenv("SHOAL_SAFETY_SEED"); v != "" {
		if seed, err := strconv.ParseUint(v, 10, 64); err == nil {
			return seed
		}
	}
	return 1
}

// TestSafetyUnderChaos runs the chaos schedule on a fleet whose membership
// changes at once everywhere, so that every crash, restart and RPC
// partition is exercised quickly.
func TestSafetyUnderChaos(t *testing.T) {
	t.Parallel()
	runFor := 6 * time.Second
	if testing.Short() {
		runFor = 3 * time.Second
	}
	f := newLockFleet(t, testServiceConfig())
	names := f.startGroups(3, 3)
	f.waitSettled(10 * time.Second)
	runChaos(t, f, names, chaosOptions{seed: safetySeed(), runFor: runFor, isolate: true, pause: 100 * time.Millisecond, downFor: 300 * time.Millisecond})
}

// TestSafetyUnderChaosSerf runs the chaos schedule on serf membership,
// where members learn of crashes and restarts at different moments.
// Partitions cut only the lock RPC: a member that serf wrongly reports
// failed loses its leases while it may still use them, which only fencing
// tokens can order, so membership partitions are left out.
func TestSafetyUnderChaosSerf(t *testing.T) {
	t.Parallel()
	runFor := 6 * time.Second
	if testing.Short() {
		runFor = 3 * time.Second
	}
	cfg := testServiceConfig()
	cfg.DefaultTTL, cfg.MaxTTL = time.Second, time.Second
	cfg.Grace = cfg.MaxTTL + 1500*time.Millisecond // room for serf's convergence on a loaded machine
	f := newSerfLockFleet(t, 3, 3, cfg, nil)
	runChaos(t, f, f.order, chaosOptions{seed: safetySeed(), runFor: runFor, pause: 400 * time.Millisecond, downFor: 1500 * time.Millisecond})
}

// chaosOptions shape a chaos run.
type chaosOptions struct {
	seed    uint64
	runFor  time.Duration
	isolate bool          // also cut a node off from every other
	pause   time.Duration // least time between events
	downFor time.Duration // least time a crashed node stays down
}

// runChaos runs workers on every node and a seeded schedule of crashes,
// restarts and RPC partitions, then checks the history.
func runChaos(t *testing.T, f chaosFleet, names []string, o chaosOptions) {
	seed, runFor, isolate := o.seed, o.runFor, o.isolate
	t.Logf("seed %d, run %v", seed, runFor)
	rng := rand.New(rand.NewPCG(seed, 0))
	s := &safetyRun{f: f, locks: map[string]int{"m0": 1, "m1": 1, "m2": 1, "s0": 2, "s1": 3},
		workers: map[string]context.CancelFunc{}, killed: map[string]time.Time{}}
	for i, n := range names {
		s.startWorkers(n, seed*100+uint64(i))
	}

	down := map[string]time.Time{} // node → restart time
	type cutLink struct {
		a, b string
		heal time.Time
	}
	var cuts []cutLink
	var kills, partitions int
	end := time.Now().Add(runFor)
	for time.Now().Before(end) {
		now := time.Now()
		for n, at := range down {
			if now.After(at) {
				f.restart(n)
				s.startWorkers(n, rng.Uint64())
				delete(down, n)
			}
		}
		cuts = slices.DeleteFunc(cuts, func(c cutLink) bool {
			if now.After(c.heal) {
				f.setLink(c.a, c.b, true)
				return true
			}
			return false
		})
		switch ev := rng.IntN(10); {
		case ev < 3 && len(down) < 2:
			// Crash a node, a proxy more often than not.
			victim := names[rng.IntN(len(names))]
			if ps := f.proxies(); rng.IntN(3) > 0 && len(ps) > 0 {
				victim = ps[rng.IntN(len(ps))]
			}
			if _, isDown := down[victim]; !isDown {
				s.kill(victim)
				down[victim] = now.Add(o.downFor + time.Duration(rng.IntN(1200))*time.Millisecond)
				kills++
			}
		case ev < 5 && isolate:
			// Isolate a node at the RPC level while membership still
			// sees it alive: its holders and the holders it serves can
			// only lose their leases by expiry.
			a := names[rng.IntN(len(names))]
			heal := now.Add(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
			for _, b := range names {
				if b != a {
					f.setLink(a, b, false)
					cuts = append(cuts, cutLink{a, b, heal})
				}
			}
			partitions++
		case ev < 7:
			a, b := names[rng.IntN(len(names))], names[rng.IntN(len(names))]
			if a != b {
				f.setLink(a, b, false)
				cuts = append(cuts, cutLink{a, b, now.Add(time.Duration(100+rng.IntN(1900)) * time.Millisecond)})
				partitions++
			}
		}
		select {
		case <-time.After(o.pause + time.Duration(rng.IntN(300))*time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
	s.mu.Lock()
	for _, cancel := range s.workers {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()

	s.hist.mu.Lock()
	records := slices.Clone(s.hist.records)
	lost := s.hist.lost
	s.hist.mu.Unlock()
	t.Logf("%d holds recorded (%d lost), %d crashes, %d partitions", len(records), lost, kills, partitions)
	if len(records) < 20 {
		t.Errorf("only %d holds recorded: the run exercised too little", len(records))
	}
	for _, p := range checkHistory(records) {
		t.Error(p)
	}
}
