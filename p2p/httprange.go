package p2p

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	errBadRange           = errors.New("malformed range")
	errUnsatisfiableRange = errors.New("range not satisfiable")
)

// parseRange interprets a Range header against a blob of size bytes. It
// supports one range: "bytes=a-b", "bytes=a-" or "bytes=-n". An empty
// header means the whole blob (partial is false).
func parseRange(h string, size int64) (off, n int64, partial bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false, fmt.Errorf("%w: %q", errBadRange, h)
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, false, fmt.Errorf("%w: %q", errBadRange, h)
	}
	if first == "" { // suffix: the last n bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, 0, false, fmt.Errorf("%w: %q", errBadRange, h)
		}
		if k == 0 || size == 0 {
			return 0, 0, false, fmt.Errorf("%w: %q of %d bytes", errUnsatisfiableRange, h, size)
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false, fmt.Errorf("%w: %q", errBadRange, h)
	}
	end := size - 1
	if last != "" {
		end, err = strconv.ParseInt(last, 10, 64)
		if err != nil || end < start {
			return 0, 0, false, fmt.Errorf("%w: %q", errBadRange, h)
		}
		end = min(end, size-1)
	}
	if start >= size {
		return 0, 0, false, fmt.Errorf("%w: %q of %d bytes", errUnsatisfiableRange, h, size)
	}
	return start, end - start + 1, true, nil
}

// contentRange formats a Content-Range header value.
func contentRange(off, n, size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size)
}

// parseContentRange parses "bytes a-b/size".
func parseContentRange(h string) (off, n, size int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%w: content-range %q", errBadRange, h)
	}
	rng, total, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%w: content-range %q", errBadRange, h)
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("%w: content-range %q", errBadRange, h)
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	size, err3 := strconv.ParseInt(total, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || a < 0 || b < a || b >= size {
		return 0, 0, 0, fmt.Errorf("%w: content-range %q", errBadRange, h)
	}
	return a, b - a + 1, size, nil
}
