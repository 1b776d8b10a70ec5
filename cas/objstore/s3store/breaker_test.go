package s3store

import (
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	// Each step happens at a time (ms after the start) and is either an
	// allow call with its expected answer or a record of an outcome; the
	// state after the step is checked.
	type step struct {
		at     int64
		allow  bool // whether this step calls allow (else record)
		want   bool // allow's expected answer
		record outcome
		state  breakerState
	}
	a := func(at int64, want bool, state breakerState) step {
		return step{at: at, allow: true, want: want, state: state}
	}
	r := func(at int64, o outcome, state breakerState) step {
		return step{at: at, record: o, state: state}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"successes keep it closed", []step{
			a(0, true, closed), r(1, answered, closed),
			a(2, true, closed), r(3, answered, closed),
		}},
		{"opens after threshold consecutive failures", []step{
			r(0, failed, closed), r(1, failed, closed), r(2, failed, open),
			a(3, false, open), a(999, false, open),
		}},
		{"a success resets the count", []step{
			r(0, failed, closed), r(1, failed, closed), r(2, answered, closed),
			r(3, failed, closed), r(4, failed, closed), r(5, failed, open),
		}},
		{"neutral outcomes do not count", []step{
			r(0, failed, closed), r(1, neutral, closed), r(2, failed, closed),
			r(3, neutral, closed), r(4, failed, open),
		}},
		{"half-open after the cool-down lets one probe through", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			a(999, false, open), a(1000, true, halfOpen),
			a(1001, false, halfOpen), a(1500, false, halfOpen),
		}},
		{"a successful probe closes it", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			a(1000, true, halfOpen), r(1010, answered, closed),
			a(1011, true, closed), a(1012, true, closed),
		}},
		{"a failed probe reopens it for a new cool-down", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			a(1000, true, halfOpen), r(1010, failed, open),
			a(1500, false, open), a(2009, false, open), a(2010, true, halfOpen),
		}},
		{"a neutral probe frees the slot", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			a(1000, true, halfOpen), a(1001, false, halfOpen),
			r(1002, neutral, halfOpen), a(1003, true, halfOpen), a(1004, false, halfOpen),
		}},
		{"a late success while open closes it", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			r(5, answered, closed), a(6, true, closed),
		}},
		{"a late failure while open keeps the cool-down", []step{
			r(0, failed, closed), r(0, failed, closed), r(0, failed, open),
			r(500, failed, open), a(1000, true, halfOpen),
		}},
	}
	start := time.Unix(1_700_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &breaker{threshold: 3, cooldown: time.Second}
			for i, s := range tt.steps {
				now := start.Add(time.Duration(s.at) * time.Millisecond)
				if s.allow {
					if got := b.allow(now); got != s.want {
						t.Fatalf("step %d: allow at %dms = %v, want %v", i, s.at, got, s.want)
					}
				} else {
					b.record(now, s.record)
				}
				if b.state != s.state {
					t.Fatalf("step %d (at %dms): state %v, want %v", i, s.at, b.state, s.state)
				}
			}
		})
	}
}

func TestBreakerRecordReportsTransitions(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	b := &breaker{threshold: 1, cooldown: time.Second}
	if from, to := b.record(now, failed); from != closed || to != open {
		t.Errorf("record(failed) = %v→%v, want closed→open", from, to)
	}
	b.allow(now.Add(time.Second))
	if from, to := b.record(now, answered); from != halfOpen || to != closed {
		t.Errorf("record(answered) = %v→%v, want half-open→closed", from, to)
	}
}
