package p2p

import (
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	const a, b, c = peer.ID("a"), peer.ID("b"), peer.ID("c")
	tests := []struct {
		name      string
		size      int64
		chunk     int64
		maxRun    int
		peers     []peer.ID
		want      map[peer.ID][]Span
		wantCount int
	}{
		{
			name: "empty blob", size: 0, chunk: 10, maxRun: 4, peers: []peer.ID{a},
			want: map[peer.ID][]Span{}, wantCount: 0,
		},
		{
			name: "one short chunk", size: 3, chunk: 10, maxRun: 4, peers: []peer.ID{a, b},
			want: map[peer.ID][]Span{a: {{0, 1}}}, wantCount: 1,
		},
		{
			name: "one peer takes runs of maxRun", size: 100, chunk: 10, maxRun: 4, peers: []peer.ID{a},
			want: map[peer.ID][]Span{a: {{0, 4}, {4, 4}, {8, 2}}}, wantCount: 10,
		},
		{
			name: "three chunks spread over three peers", size: 30, chunk: 10, maxRun: 4, peers: []peer.ID{a, b, c},
			want: map[peer.ID][]Span{a: {{0, 1}}, b: {{1, 1}}, c: {{2, 1}}}, wantCount: 3,
		},
		{
			name: "guided self-scheduling shrinks runs", size: 95, chunk: 10, maxRun: 8, peers: []peer.ID{a, b, c},
			// 10 chunks: ceil(10/3)=4, ceil(6/3)=2, ceil(4/3)=2, then 1 and 1.
			want:      map[peer.ID][]Span{a: {{0, 4}, {8, 1}}, b: {{4, 2}, {9, 1}}, c: {{6, 2}}},
			wantCount: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Plan(tt.size, tt.chunk, tt.maxRun, tt.peers)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan = %v, want %v", got, tt.want)
			}
			if n := NewSchedule(tt.size, tt.chunk, tt.maxRun).Chunks(); n != tt.wantCount {
				t.Errorf("Chunks = %d, want %d", n, tt.wantCount)
			}
		})
	}
}

func TestScheduleBytes(t *testing.T) {
	t.Parallel()
	s := NewSchedule(95, 10, 4)
	tests := []struct {
		span          Span
		wantOff, want int64
	}{
		{Span{0, 1}, 0, 10},
		{Span{2, 3}, 20, 30},
		{Span{8, 2}, 80, 15},
		{Span{9, 1}, 90, 5},
	}
	for _, tt := range tests {
		off, n := s.Bytes(tt.span)
		if off != tt.wantOff || n != tt.want {
			t.Errorf("Bytes(%v) = %d,%d; want %d,%d", tt.span, off, n, tt.wantOff, tt.want)
		}
	}
	if got := s.ChunkOf(95 - 1); got != 9 {
		t.Errorf("ChunkOf(94) = %d, want 9", got)
	}
}

// A failed peer's unfinished chunks go back to the queue, ahead of
// untouched ones, and are leased (merged when adjacent) to another peer.
func TestScheduleReleaseReassigns(t *testing.T) {
	t.Parallel()
	const a, b = peer.ID("a"), peer.ID("b")
	s := NewSchedule(100, 10, 4)
	spA, _ := s.Next(a, 2) // chunks 0-3
	spB, _ := s.Next(b, 2) // chunks 4-7
	if spA != (Span{0, 4}) || spB != (Span{4, 3}) {
		t.Fatalf("leases %v %v", spA, spB)
	}
	if !s.Received(0, a) || !s.Received(1, a) {
		t.Fatal("Received refused a leased chunk")
	}
	if s.Received(2, b) {
		t.Fatal("Received accepted a chunk leased to another peer")
	}
	if got := s.Release(spA, a); got != 2 {
		t.Fatalf("Release = %d, want 2 (chunks 2 and 3)", got)
	}
	if s.Pending() != 5 { // 2,3 released; 7,8,9 untouched
		t.Fatalf("Pending = %d, want 5", s.Pending())
	}
	sp, ok := s.Next(b, 1)
	if !ok || sp != (Span{2, 2}) {
		t.Fatalf("Next after release = %v, %v; want chunks 2-3 (merged)", sp, ok)
	}
	sp, _ = s.Next(b, 1)
	if sp != (Span{7, 3}) {
		t.Fatalf("Next = %v, want 7-9", sp)
	}
	if _, ok := s.Next(a, 1); ok {
		t.Fatal("Next returned a span with nothing pending")
	}
	for i := 2; i < 10; i++ {
		s.Received(i, b)
	}
	if !s.Complete() {
		t.Fatal("schedule not complete")
	}
	if s.Owner(0) != a || s.Owner(9) != b {
		t.Fatalf("owners %s %s", s.Owner(0), s.Owner(9))
	}
}

func TestBlame(t *testing.T) {
	t.Parallel()
	const a, b, c = peer.ID("a"), peer.ID("b"), peer.ID("c")
	sum := func(x byte) uint64 { return uint64(x) }
	good := DownloadStats{ChunkSize: 10, Chunks: []ChunkSource{{a, sum(1)}, {a, sum(2)}, {a, sum(3)}}}
	tests := []struct {
		name   string
		failed DownloadStats
		want   []peer.ID
	}{
		{"one bad peer", DownloadStats{ChunkSize: 10, Chunks: []ChunkSource{{a, sum(1)}, {b, sum(9)}, {c, sum(3)}}}, []peer.ID{b}},
		{"two bad peers", DownloadStats{ChunkSize: 10, Chunks: []ChunkSource{{c, sum(8)}, {b, sum(9)}, {a, sum(3)}}}, []peer.ID{b, c}},
		{"nobody differs", DownloadStats{ChunkSize: 10, Chunks: []ChunkSource{{b, sum(1)}, {c, sum(2)}, {b, sum(3)}}}, nil},
		{"chunk sizes differ", DownloadStats{ChunkSize: 5, Chunks: []ChunkSource{{c, sum(1)}, {b, sum(2)}}}, []peer.ID{b, c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Blame(tt.failed, good); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Blame = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScheduleSteal(t *testing.T) {
	t.Parallel()
	const slow, fast = peer.ID("slow"), peer.ID("fast")
	s := NewSchedule(160, 10, 8)
	spSlow, _ := s.Next(slow, 2) // 0-7
	spFast, _ := s.Next(fast, 1) // 8-15
	if spSlow != (Span{0, 8}) || spFast != (Span{8, 8}) {
		t.Fatalf("leases %v %v", spSlow, spFast)
	}
	if !s.Start(0, slow) {
		t.Fatal("Start refused the owner")
	}
	for i := 8; i < 16; i++ {
		s.Start(i, fast)
		s.Received(i, fast)
	}
	if _, ok := s.Next(fast, 2); ok {
		t.Fatal("Next found pending chunks")
	}
	// slow is on chunk 0; 1-7 are not started: fast takes the back half
	// of what is left each time, and slow keeps chunk 1.
	steps := []Span{{5, 3}, {3, 2}, {2, 1}}
	for _, want := range steps {
		got, ok := s.Steal(fast)
		if !ok || got != want {
			t.Fatalf("Steal = %v, %v; want %v", got, ok, want)
		}
	}
	if got, ok := s.Steal(fast); ok {
		t.Fatalf("Steal took %v from a one-chunk run", got)
	}
	if s.Start(4, slow) {
		t.Fatal("slow may still start a stolen chunk")
	}
	if !s.Start(1, slow) || !s.Received(1, slow) {
		t.Fatal("slow lost a chunk it kept")
	}
	if s.Received(5, slow) {
		t.Fatal("slow delivered a stolen chunk")
	}
	// Fast now holds 2-7 unstarted; it never steals from itself.
	if got, ok := s.Steal(fast); ok {
		t.Fatalf("fast stole %v from itself", got)
	}
	// Started chunks are never stolen: runs 4 and 7 are single chunks.
	for _, c := range []int{2, 3, 5, 6} {
		s.Start(c, fast)
	}
	if got, ok := s.Steal(slow); ok {
		t.Fatalf("slow stole %v: only one unstarted chunk per run is left", got)
	}
}
