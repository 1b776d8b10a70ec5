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
