package sim

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReportOrder: strategies are reported in one order, whatever order
// they ran in, and each keeps its colour in the plot.
func TestReportOrder(t *testing.T) {
	t.Parallel()
	sc, err := Parse([]byte(strings.Replace(smallScenario, "pull_timeout: 2m", "strategies: [shoal, hedged, random-peer]\npull_timeout: 2m", 1)))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := newReport(plan)
	for _, st := range sc.Strategies {
		rep.add(st, &strategyRun{wall: time.Second, pulls: []pullResult{{Node: "g01-n01", Image: "app:v1", Took: time.Second}}})
	}
	if want := []string{RandomPeer, Hedged, Shoal}; !slices.Equal(rep.Order(), want) {
		t.Fatalf("order %v, want %v", rep.Order(), want)
	}
	var svg bytes.Buffer
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	for _, name := range rep.Order() {
		if !strings.Contains(svg.String(), `stroke="`+strategyColor(name)+`"`) || !strings.Contains(svg.String(), ">"+name+"<") {
			t.Errorf("SVG lacks %s or its colour %s", name, strategyColor(name))
		}
	}
}

// TestReportDilation: a dilated run's pull times and lock waits are
// reported in simulated time (wall time ÷ dilation), with a note saying so;
// an undilated run has no such note.
func TestReportDilation(t *testing.T) {
	t.Parallel()
	sc, err := Parse([]byte(strings.Replace(smallScenario, "pull_timeout: 2m", "strategies: [origin-only, shoal]\ntime_dilation: {shoal: 4}\npull_timeout: 2m", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Dilation(Shoal) != 4 || sc.Dilation(OriginOnly) != 1 {
		t.Fatalf("dilations %d and %d, want 4 and 1", sc.Dilation(Shoal), sc.Dilation(OriginOnly))
	}
	plan, err := NewPlan(sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := newReport(plan)
	pulls := []pullResult{{Node: "g01-n01", Image: "app:v1", Took: 8 * time.Second}}
	rep.add(OriginOnly, &strategyRun{wall: 8 * time.Second, dilation: 1, pulls: pulls, lockWaits: lockWaits{Count: 1, SumSeconds: 2}})
	rep.add(Shoal, &strategyRun{wall: 8 * time.Second, dilation: 4, pulls: pulls, lockWaits: lockWaits{Count: 1, SumSeconds: 2}})
	o, s := rep.Strategies[OriginOnly], rep.Strategies[Shoal]
	if o.PullSeconds.P99 != 8 || s.PullSeconds.P99 != 2 {
		t.Errorf("p99 %v and %v, want 8 and 2", o.PullSeconds.P99, s.PullSeconds.P99)
	}
	if o.LockWaits.SumSeconds != 2 || s.LockWaits.SumSeconds != 0.5 {
		t.Errorf("lock waits %v and %v, want 2 and 0.5", o.LockWaits.SumSeconds, s.LockWaits.SumSeconds)
	}
	if s.WallSeconds != 8 || s.TimeDilation != 4 || o.TimeDilation != 1 {
		t.Errorf("wall %v, dilations %d and %d", s.WallSeconds, s.TimeDilation, o.TimeDilation)
	}
	if len(o.Notes) != 0 || len(s.Notes) == 0 || !strings.Contains(s.Notes[0], "time dilated 4×") {
		t.Errorf("notes %q and %q", o.Notes, s.Notes)
	}
	var svg bytes.Buffer
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(svg.String(), "time dilated"); n != 1 {
		t.Errorf("the SVG names a dilation %d times, want once (shoal's)", n)
	}
}
