package sim

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteSVG draws the pull completion-time CDF of every strategy.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, height            = 760, 460
		left, right, top, bottom = 70, 180, 50, 60
		plotW, plotH             = width - left - right, height - top - bottom
	)
	maxT := r.BoundSeconds
	for _, name := range r.order {
		if s := r.Strategies[name]; s.PullSeconds.Max > maxT {
			maxT = s.PullSeconds.Max
		}
	}
	step := niceStep(maxT / 6)
	if maxT <= 0 {
		maxT, step = 1, 0.2
	}
	maxT = math.Ceil(maxT/step) * step
	x := func(t float64) float64 { return left + t/maxT*plotW }
	y := func(f float64) float64 { return top + (1-f)*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	title := fmt.Sprintf("%s: %d hosts, %s per host — pull completion time", r.Scenario, r.Nodes, Bytes(r.ImageBytes))
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and ticks.
	for t := 0.0; t <= maxT+step/2; t += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>`+"\n", x(t), top, x(t), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), top+plotH+18, fmtTick(t))
	}
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y(f), left+plotW, y(f))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%d%%</text>`+"\n", left-8, y(f), i*25)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, top, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">pull completion time (seconds)</text>`+"\n", left+plotW/2, height-18)
	fmt.Fprintf(&b, `<text transform="translate(20 %d) rotate(-90)" text-anchor="middle">hosts finished (%% of pulls)</text>`+"\n", top+plotH/2)
	if r.BoundSeconds > 0 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="4 4"/>`+"\n", x(r.BoundSeconds), top, x(r.BoundSeconds), top+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#666" font-size="11">bound %.1fs</text>`+"\n", x(r.BoundSeconds)+4, top+12, r.BoundSeconds)
	}
	for i, name := range r.order {
		s := r.Strategies[name]
		color := strategyColor(name)
		total := s.Pulls
		if total > 0 && len(s.Samples) > 0 {
			pts := []string{fmt.Sprintf("%.1f,%.1f", x(0), y(0))}
			prev := 0.0
			for k, t := range s.Samples {
				f := float64(k+1) / float64(total)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(t), y(prev), x(t), y(f)))
				prev = f
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		}
		ly := top + 10 + i*40
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", left+plotW+12, ly, left+plotW+36, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", left+plotW+42, ly, html.EscapeString(name))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#555">p99 %.1fs, origin ×%.1f</text>`+"\n", left+plotW+42, ly+15, s.PullSeconds.P99, s.OriginMultiple)
		if s.TimeDilation > 1 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#555">run with time dilated %d×</text>`+"\n", left+plotW+42, ly+27, s.TimeDilation)
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// strategyColor gives each strategy one colour in every plot.
func strategyColor(name string) string {
	switch name {
	case OriginOnly:
		return "#d62728"
	case RandomPeer:
		return "#ff7f0e"
	case Hedged:
		return "#9467bd"
	case Shoal:
		return "#1f77b4"
	}
	return "#2ca02c"
}

// niceStep rounds a raw tick step to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(t float64) string {
	if t == math.Trunc(t) {
		return fmt.Sprintf("%.0f", t)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", t), "0"), ".")
}
