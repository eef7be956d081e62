package query

import "testing"

// A gap inside a candidate group, and overlapping segments, must not hide
// a candidate range from Need's binary search.
func TestNeedWithGapsAndOverlaps(t *testing.T) {
	p := &Index{
		Covered:   Merge([]SeqRange{{0, 127}, {100, 300}, {400, 500}}),
		Candidate: Merge([]SeqRange{{0, 127}, {50, 60}, {200, 210}, {205, 220}}),
	}
	for _, tc := range []struct {
		first, last uint64
		want        bool
	}{
		{61, 70, true}, {100, 110, true}, {120, 127, true}, // after the gap, inside the group
		{128, 199, false}, {200, 200, true}, {215, 230, true}, {221, 300, false},
		{301, 399, true}, // not Covered: scanned
		{450, 460, false}, {490, 510, true},
	} {
		if got := p.Need(tc.first, tc.last); got != tc.want {
			t.Errorf("need(%d, %d) = %v, want %v", tc.first, tc.last, got, tc.want)
		}
	}
}

// Must: the seqs of a frame read packet by packet are the candidates and
// whatever no segment covers, merged, clipped to the frame.
func TestMust(t *testing.T) {
	p := &Index{
		Covered:   Merge([]SeqRange{{0, 127}, {100, 300}, {400, 500}}),
		Candidate: Merge([]SeqRange{{50, 60}, {200, 210}, {205, 220}, {450, 451}}),
	}
	for _, tc := range []struct {
		first, last uint64
		want        []SeqRange
	}{
		{0, 49, nil},
		{40, 70, []SeqRange{{50, 60}}},
		{150, 450, []SeqRange{{200, 220}, {301, 399}, {450, 450}}},
		{290, 420, []SeqRange{{301, 399}}},
		{495, 510, []SeqRange{{501, 510}}},
	} {
		got := p.Must(tc.first, tc.last, nil)
		if len(got) != len(tc.want) {
			t.Errorf("must(%d, %d) = %v, want %v", tc.first, tc.last, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("must(%d, %d) = %v, want %v", tc.first, tc.last, got, tc.want)
			}
		}
	}
}
