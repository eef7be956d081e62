package main

import "testing"

// A gap inside a candidate group, and overlapping segments, must not hide
// a candidate range from need's binary search.
func TestNeedWithGapsAndOverlaps(t *testing.T) {
	p := &plan{
		covered:   merge([]seqRange{{0, 127}, {100, 300}, {400, 500}}),
		candidate: merge([]seqRange{{0, 127}, {50, 60}, {200, 210}, {205, 220}}),
	}
	for _, tc := range []struct {
		first, last uint64
		want        bool
	}{
		{61, 70, true}, {100, 110, true}, {120, 127, true}, // after the gap, inside the group
		{128, 199, false}, {200, 200, true}, {215, 230, true}, {221, 300, false},
		{301, 399, true}, // not covered: scanned
		{450, 460, false}, {490, 510, true},
	} {
		if got := p.need(tc.first, tc.last); got != tc.want {
			t.Errorf("need(%d, %d) = %v, want %v", tc.first, tc.last, got, tc.want)
		}
	}
}
