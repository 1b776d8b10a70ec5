package p2p

import (
	"errors"
	"testing"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h       string
		size    int64
		off, n  int64
		partial bool
		wantErr error
	}{
		{"", 100, 0, 100, false, nil},
		{"bytes=0-9", 100, 0, 10, true, nil},
		{"bytes=90-", 100, 90, 10, true, nil},
		{"bytes=90-1000", 100, 90, 10, true, nil},
		{"bytes=-10", 100, 90, 10, true, nil},
		{"bytes=-1000", 100, 0, 100, true, nil},
		{"bytes=99-99", 100, 99, 1, true, nil},
		{"bytes=100-", 100, 0, 0, false, errUnsatisfiableRange},
		{"bytes=-0", 100, 0, 0, false, errUnsatisfiableRange},
		{"bytes=0-", 0, 0, 0, false, errUnsatisfiableRange},
		{"bytes=5-4", 100, 0, 0, false, errBadRange},
		{"bytes=0-1,5-6", 100, 0, 0, false, errBadRange},
		{"items=0-1", 100, 0, 0, false, errBadRange},
		{"bytes=a-b", 100, 0, 0, false, errBadRange},
		{"bytes=-", 100, 0, 0, false, errBadRange},
		{"bytes=10", 100, 0, 0, false, errBadRange},
	}
	for _, tt := range tests {
		off, n, partial, err := parseRange(tt.h, tt.size)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("parseRange(%q, %d) err = %v, want %v", tt.h, tt.size, err, tt.wantErr)
			continue
		}
		if off != tt.off || n != tt.n || partial != tt.partial {
			t.Errorf("parseRange(%q, %d) = %d,%d,%v; want %d,%d,%v", tt.h, tt.size, off, n, partial, tt.off, tt.n, tt.partial)
		}
	}
}

func TestContentRangeRoundTrip(t *testing.T) {
	t.Parallel()
	off, n, size, err := parseContentRange(contentRange(10, 5, 100))
	if err != nil || off != 10 || n != 5 || size != 100 {
		t.Fatalf("round trip = %d,%d,%d,%v", off, n, size, err)
	}
	for _, bad := range []string{"", "bytes 5-4/100", "bytes 0-100/100", "bytes 0-1", "items 0-1/2", "bytes x-1/2"} {
		if _, _, _, err := parseContentRange(bad); err == nil {
			t.Errorf("parseContentRange(%q) accepted", bad)
		}
	}
}
