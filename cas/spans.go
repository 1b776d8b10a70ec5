package cas

// span is the half-open byte range [start, end).
type span struct{ start, end int64 }

// spans is a set of byte ranges, kept sorted, disjoint and merged (no two
// ranges touch). A Writer uses it to track which bytes are on disk.
type spans []span

// prefix returns the length of the contiguous range that starts at byte 0.
func (s spans) prefix() int64 {
	if len(s) > 0 && s[0].start == 0 {
		return s[0].end
	}
	return 0
}

// extent returns the end of the range that holds byte off, or off when
// none does.
func (s spans) extent(off int64) int64 {
	for _, r := range s {
		if r.start <= off && off < r.end {
			return r.end
		}
		if r.start > off {
			break
		}
	}
	return off
}

// add returns s with [a, b) included.
func (s spans) add(a, b int64) spans {
	if a >= b {
		return s
	}
	// Fast path for sequential writes: extend the last range in place.
	if n := len(s); n > 0 && s[n-1].start <= a && a <= s[n-1].end {
		s[n-1].end = max(s[n-1].end, b)
		return s
	}
	if len(s) == 0 || s[len(s)-1].end < a {
		return append(s, span{a, b})
	}
	out := make(spans, 0, len(s)+1)
	i := 0
	for ; i < len(s) && s[i].end < a; i++ {
		out = append(out, s[i])
	}
	for ; i < len(s) && s[i].start <= b; i++ {
		a, b = min(a, s[i].start), max(b, s[i].end)
	}
	out = append(out, span{a, b})
	return append(out, s[i:]...)
}

// remove returns s without [a, b).
func (s spans) remove(a, b int64) spans {
	if a >= b {
		return s
	}
	out := make(spans, 0, len(s)+1)
	for _, r := range s {
		if r.end <= a || r.start >= b {
			out = append(out, r)
			continue
		}
		if r.start < a {
			out = append(out, span{r.start, a})
		}
		if r.end > b {
			out = append(out, span{b, r.end})
		}
	}
	return out
}

// missing returns the parts of [a, b) that s does not cover, in order.
func (s spans) missing(a, b int64) []span {
	var out []span
	for _, r := range s {
		if a >= b {
			break
		}
		if r.end <= a {
			continue
		}
		if r.start >= b {
			break
		}
		if r.start > a {
			out = append(out, span{a, r.start})
		}
		a = max(a, r.end)
	}
	if a < b {
		out = append(out, span{a, b})
	}
	return out
}
