package registryapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors from range parsing.
var (
	// errRangeSyntax: the header is malformed.
	errRangeSyntax = errors.New("malformed range")
	// errRangeUnsatisfiable: the range lies outside the content.
	errRangeUnsatisfiable = errors.New("range not satisfiable")
	// errRangeMultiple: several ranges were asked for; serve the whole.
	errRangeMultiple = errors.New("multiple ranges")
	// errRangeUnit: a unit other than bytes; ignore the header.
	errRangeUnit = errors.New("unsupported range unit")
)

// byteRange is an inclusive byte range [Start, End].
type byteRange struct {
	Start, End int64
}

// Length returns the number of bytes in the range.
func (b byteRange) Length() int64 { return b.End - b.Start + 1 }

// parseRange parses a Range request header against content of the given
// size. It accepts one range of the forms bytes=a-b, bytes=a- and bytes=-n,
// clamping the end to the content. It returns errRangeMultiple for several
// ranges, errRangeUnit for another unit, errRangeSyntax for a malformed
// header and errRangeUnsatisfiable when no byte of the content is covered.
func parseRange(header string, size int64) (byteRange, error) {
	unit, spec, ok := strings.Cut(header, "=")
	if !ok {
		return byteRange{}, errRangeSyntax
	}
	if strings.TrimSpace(unit) != "bytes" {
		return byteRange{}, errRangeUnit
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		for part := range strings.SplitSeq(spec, ",") {
			if _, _, err := parseRangeSpec(strings.TrimSpace(part)); err != nil {
				return byteRange{}, err
			}
		}
		return byteRange{}, errRangeMultiple
	}
	first, last, err := parseRangeSpec(spec)
	if err != nil {
		return byteRange{}, err
	}
	switch {
	case first < 0: // suffix: the last `last` bytes
		if last == 0 || size == 0 {
			return byteRange{}, errRangeUnsatisfiable
		}
		return byteRange{Start: max(size-last, 0), End: size - 1}, nil
	case first >= size:
		return byteRange{}, errRangeUnsatisfiable
	case last < 0 || last >= size:
		return byteRange{Start: first, End: size - 1}, nil
	default:
		return byteRange{Start: first, End: last}, nil
	}
}

// parseRangeSpec parses "a-b", "a-" (last = -1) or "-n" (first = -1, last = n).
func parseRangeSpec(spec string) (first, last int64, err error) {
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, errRangeSyntax
	}
	if a == "" {
		n, err := parseDecimal(b)
		if err != nil {
			return 0, 0, err
		}
		return -1, n, nil
	}
	first, err = parseDecimal(a)
	if err != nil {
		return 0, 0, err
	}
	if b == "" {
		return first, -1, nil
	}
	last, err = parseDecimal(b)
	if err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, errRangeSyntax
	}
	return first, last, nil
}

// parseDecimal parses a non-negative decimal with no sign or spaces.
func parseDecimal(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errRangeSyntax
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errRangeSyntax
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errRangeSyntax
	}
	return n, nil
}

// parseContentRange parses an upload chunk's Content-Range header:
// "start-end" (the spec's form), also accepting a "bytes " or "bytes="
// prefix and a trailing "/size" some clients send.
func parseContentRange(header string) (byteRange, error) {
	s := strings.TrimSpace(header)
	if rest, ok := strings.CutPrefix(s, "bytes"); ok {
		s = strings.TrimLeft(rest, " =")
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return byteRange{}, errRangeSyntax
	}
	start, err := parseDecimal(a)
	if err != nil {
		return byteRange{}, err
	}
	end, err := parseDecimal(b)
	if err != nil {
		return byteRange{}, err
	}
	if end < start {
		return byteRange{}, errRangeSyntax
	}
	return byteRange{Start: start, End: end}, nil
}

// uploadRange formats the Range header of an upload holding size bytes:
// "0-<size-1>", or "0-0" when empty, as registries conventionally do.
func uploadRange(size int64) string {
	return fmt.Sprintf("0-%d", max(size-1, 0))
}
